"""Fixtures for the sandbox tests: a running sandbox, an authorised client session, a PKCE helper."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kaalwatch.sandbox import Clock, Sandbox

REDIRECT = "http://localhost:8765/callback"
SCOPES = "transactions_r transactions_w shops_r listings_r"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A seeded sandbox (seed 1) on a free port, consent page auto-approved, clock frozen.

    Rate limits are raised so that tests about other things never trip them on a frozen clock; the
    rate-limit tests build their own sandbox with the defaults.
    """
    sb = Sandbox(seed=1, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000)
    sb.start()
    yield sb
    sb.stop()


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), computed independently of the sandbox's own code."""
    verifier = secrets.token_urlsafe(64)[:80]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(sb: Sandbox, challenge: str, *, redirect: str = REDIRECT, scope: str = SCOPES,
              state: str = "st4te") -> str:
    """Run the consent step (auto-approved or by pressing Allow) and return the code."""
    params = {"response_type": "code", "client_id": sb.keystring, "redirect_uri": redirect, "scope": scope,
              "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
    r = requests.get(f"{sb.url}/oauth/connect", params=params, allow_redirects=False, timeout=5)
    if r.status_code == 200:  # consent page: press Allow
        r = requests.post(f"{sb.url}/oauth/connect", data={**params, "decision": "allow"},
                          allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["state"] == [state]
    return q["code"][0]


def token_request(sb: Sandbox, data: dict[str, str], **kw: object) -> requests.Response:
    headers = {"x-api-key": sb.api_key, **kw.pop("headers", {})}  # type: ignore[dict-item]
    return requests.post(f"{sb.url}/v3/public/oauth/token", data=data, headers=headers, timeout=5, **kw)  # type: ignore[arg-type]


def login(sb: Sandbox, scope: str = SCOPES) -> Tokens:
    verifier, challenge = pkce_pair()
    code = authorize(sb, challenge, scope=scope)
    r = token_request(sb, {"grant_type": "authorization_code", "client_id": sb.keystring,
                           "redirect_uri": REDIRECT, "code": code, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    body = r.json()
    return Tokens(body["access_token"], body["refresh_token"], body["expires_in"])


@pytest.fixture
def tokens(sandbox: Sandbox) -> Tokens:
    return login(sandbox)


@pytest.fixture
def api(sandbox: Sandbox, tokens: Tokens) -> Callable[..., requests.Response]:
    """``api("GET", "/v3/application/...", params=...)`` with x-api-key and the bearer token."""
    session = requests.Session()
    session.headers.update({"x-api-key": sandbox.api_key, "Authorization": f"Bearer {tokens.access_token}"})

    def call(method: str, path: str, **kw: object) -> requests.Response:
        path = path.replace("{shop_id}", str(sandbox.shop_id))
        return session.request(method, sandbox.url + path, timeout=10, **kw)  # type: ignore[arg-type]

    yield call  # type: ignore[misc]
    session.close()
