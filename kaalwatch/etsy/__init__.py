"""Etsy Open API v3: OAuth with PKCE, the HTTP client (retries, refresh, rate limits), and JSON → our objects.

``tokens`` keeps the shop's tokens, ``oauth`` connects the shop, ``ratelimit`` paces requests, ``client``
speaks HTTP, ``parse`` turns Etsy's receipts into :class:`kaalwatch.model.Order` objects.
"""
