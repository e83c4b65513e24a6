"""A local Etsy Open API v3 shop on loopback: the demo's default Etsy and every integration test's Etsy.

Never used unless asked for (``kaalwatch sandbox``, ``kaalwatch demo``, tests): the real Etsy base URL
stays the default everywhere else.

Etsy paths served (operationIds from Etsy's OpenAPI document): ``ping``, ``tokenScopes``, ``getMe``,
``getShop``, ``getShopReceipts``, ``getShopReceipt``, ``updateShopReceipt``,
``getShopReceiptTransactionsByReceipt``, ``createReceiptShipment``, ``getListing``,
``getListingsByListingIds``, ``getListingImages``, ``getListingPersonalization``; OAuth at
``GET|POST /oauth/connect`` and ``POST /v3/public/oauth/token``; files at ``GET /_files/...``.

Admin API (JSON, never rate-limited, faulted or logged)::

    GET    /_sandbox                          credentials, ids, urls
    POST   /_sandbox/orders                   {listing_id?, buyer_name?, answers?, uploads?, ...} -> receipt
    POST   /_sandbox/orders/hostile           {other_port?} -> receipt with off-sandbox upload URLs
    POST   /_sandbox/receipts/{id}/cancel|complete|touch
    POST   /_sandbox/receipts/{id}/refund     {partial?: bool, bump?: bool}
    POST   /_sandbox/tokens/expire            expire every access token
    POST   /_sandbox/tokens/revoke            revoke everything (password change)
    POST   /_sandbox/faults                   {status?, latency?, count?, share?, drop?, paths?}
    GET    /_sandbox/faults    DELETE /_sandbox/faults
    GET    /_sandbox/requests  DELETE /_sandbox/requests
    POST   /_sandbox/clock/advance            {seconds}
    POST   /_sandbox/rate-limits/reset
"""

from kaalwatch.sandbox.app import DEFAULT_KEYSTRING, DEFAULT_SHARED_SECRET, Sandbox
from kaalwatch.sandbox.clock import Clock
from kaalwatch.sandbox.recording import RecordedRequest

__all__ = ["DEFAULT_KEYSTRING", "DEFAULT_SHARED_SECRET", "Clock", "RecordedRequest", "Sandbox"]
