"""Is this host, or this URL's host, this machine? The one answer for the sandbox, the SSRF guard, the
OAuth redirect and the review page's bind address."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ``::1``, bracketed or not).

    Names under ``.localhost`` are not taken: the resolver, not RFC 6761, decides where they go.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (the sandbox's base URL, a loopback OAuth callback)."""
    try:
        return is_loopback_host(urlsplit(url).hostname or "")
    except ValueError:  # an unparsable URL (a bad port, an unclosed bracket) is not local
        return False
