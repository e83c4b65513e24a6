"""The one "is this machine?" check behind the sandbox's URLs, the SSRF guard, OAuth redirects and the page's bind."""

from __future__ import annotations

import pytest

from kaalwatch.loopback import is_loopback_host, is_loopback_url


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.1", "::1", "[::1]", " localhost "])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "192.168.1.2", "example.com", "sandbox.localhost",
                                  "localhost.example.com", "127.0.0.1.nip.io"])
def test_other_hosts(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8123", True), ("https://localhost/v3", True), ("http://[::1]:9/x", True),
    ("https://openapi.etsy.com", False), ("http://user@example.com@127.0.0.1", True),
    ("http://[::1", False), ("http://127.0.0.1:notaport", True), ("not a url", False),
])
def test_loopback_urls(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local
