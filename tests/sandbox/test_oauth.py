"""OAuth as Etsy enforces it: consent page, PKCE S256, single-use codes, rotation, expiry, revocation, api keys."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from kaalwatch.sandbox import Clock, Sandbox
from tests.sandbox.conftest import REDIRECT, SCOPES, authorize, login, pkce_pair, token_request


def exchange(sb: Sandbox, code: str, verifier: str, redirect: str = REDIRECT) -> requests.Response:
    return token_request(sb, {"grant_type": "authorization_code", "client_id": sb.keystring,
                              "redirect_uri": redirect, "code": code, "code_verifier": verifier})


def refresh(sb: Sandbox, refresh_token: str) -> requests.Response:
    return token_request(sb, {"grant_type": "refresh_token", "client_id": sb.keystring,
                              "refresh_token": refresh_token})


def me(sb: Sandbox, access_token: str, api_key: str | None = None) -> requests.Response:
    return requests.get(f"{sb.url}/v3/application/users/me", timeout=5,
                        headers={"x-api-key": api_key or sb.api_key, "Authorization": f"Bearer {access_token}"})


def test_code_exchange_gives_etsy_shaped_tokens(sandbox: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    r = exchange(sandbox, authorize(sandbox, challenge), verifier)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].split(".")[0] == str(sandbox.user_id)
    assert me(sandbox, body["access_token"]).json() == {"user_id": sandbox.user_id, "shop_id": sandbox.shop_id}


def test_wrong_pkce_verifier_fails_and_burns_the_code(sandbox: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(sandbox, challenge)
    other_verifier, _ = pkce_pair()
    r = exchange(sandbox, code, other_verifier)
    assert r.status_code == 400
    assert r.json() == {"error": "invalid_grant", "error_description": "code_verifier is invalid"}
    assert exchange(sandbox, code, verifier).json()["error"] == "invalid_grant"


def test_code_is_single_use_and_short_lived(sandbox: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(sandbox, challenge)
    assert exchange(sandbox, code, verifier).status_code == 200
    assert exchange(sandbox, code, verifier).json()["error"] == "invalid_grant"
    code = authorize(sandbox, challenge)
    sandbox.advance(301)
    r = exchange(sandbox, code, verifier)
    assert r.status_code == 400 and r.json()["error_description"] == "code has expired"


def test_redirect_uri_must_match_between_connect_and_token(sandbox: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(sandbox, challenge)
    r = exchange(sandbox, code, verifier, redirect="http://localhost:9999/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_the_old_refresh_token_dies(sandbox: Sandbox) -> None:
    first = login(sandbox)
    r = refresh(sandbox, first.refresh_token)
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first.refresh_token
    assert second["access_token"] != first.access_token
    old = refresh(sandbox, first.refresh_token)
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"
    assert refresh(sandbox, second["refresh_token"]).status_code == 200


def test_access_token_expires_after_expires_in() -> None:
    with Sandbox(auto_approve=True, clock=Clock(frozen=True), token_ttl=120) as sb:
        tokens = login(sb)
        assert tokens.expires_in == 120
        sb.advance(119)
        assert me(sb, tokens.access_token).status_code == 200
        sb.advance(1)
        r = me(sb, tokens.access_token)
        assert r.status_code == 401
        assert r.json() == {"error": "invalid_token", "error_description": "access token is expired"}
        fresh = refresh(sb, tokens.refresh_token).json()
        assert me(sb, fresh["access_token"]).status_code == 200


def test_expire_tokens_then_refresh_works(sandbox: Sandbox) -> None:
    tokens = login(sandbox)
    sandbox.expire_tokens()
    assert me(sandbox, tokens.access_token).json()["error"] == "invalid_token"
    assert me(sandbox, refresh(sandbox, tokens.refresh_token).json()["access_token"]).status_code == 200


def test_revoke_all_is_a_password_change(sandbox: Sandbox) -> None:
    tokens = login(sandbox)
    sandbox.revoke_all_tokens()
    assert me(sandbox, tokens.access_token).status_code == 401
    r = refresh(sandbox, tokens.refresh_token)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert "error_description" in r.json()
    assert me(sandbox, login(sandbox).access_token).status_code == 200  # re-auth works


def test_token_endpoint_is_form_encoded_only(sandbox: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = authorize(sandbox, challenge)
    r = requests.post(f"{sandbox.url}/v3/public/oauth/token", timeout=5, headers={"x-api-key": sandbox.api_key},
                      json={"grant_type": "authorization_code", "client_id": sandbox.keystring,
                            "redirect_uri": REDIRECT, "code": code, "code_verifier": verifier})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    bad = token_request(sandbox, {"grant_type": "password", "client_id": sandbox.keystring})
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(("header", "message"), [
    (None, "Missing x-api-key header."),
    ("sandbox-keystring", "Shared secret is required in x-api-key header."),
    ("sandbox-keystring:wrong", "Invalid API key."),
    ("other:sandbox-secret", "Invalid API key."),
])
def test_x_api_key_needs_keystring_and_shared_secret(sandbox: Sandbox, header, message) -> None:
    headers = {"x-api-key": header} if header else {}
    r = requests.get(f"{sandbox.url}/v3/application/openapi-ping", headers=headers, timeout=5)
    assert r.status_code == 403 and r.json() == {"error": message}
    t = requests.post(f"{sandbox.url}/v3/public/oauth/token", headers=headers, timeout=5,
                      data={"grant_type": "refresh_token", "client_id": "x", "refresh_token": "y"})
    assert t.status_code == 403


def test_bearer_required_and_scopes_enforced(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/v3/application/shops/{sandbox.shop_id}/receipts"
    r = requests.get(url, headers={"x-api-key": sandbox.api_key}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    reader = login(sandbox, scope="shops_r listings_r")
    r = requests.get(url, headers={"x-api-key": sandbox.api_key,
                                   "Authorization": f"Bearer {reader.access_token}"}, timeout=5)
    assert r.status_code == 403 and "transactions_r" in r.json()["error"]
    scopes = requests.post(f"{sandbox.url}/v3/application/scopes", headers={"x-api-key": sandbox.api_key},
                           data={"token": reader.access_token}, timeout=5)
    assert scopes.json() == {"scopes": ["listings_r", "shops_r"]}


def test_consent_page_escapes_and_allow_redirects_with_code_and_state() -> None:
    with Sandbox(auto_approve=False) as sb:
        _, challenge = pkce_pair()
        evil_state = '"><script>alert(1)</script>'
        params = {"response_type": "code", "client_id": sb.keystring, "redirect_uri": REDIRECT,
                  "scope": SCOPES, "state": evil_state, "code_challenge": challenge,
                  "code_challenge_method": "S256"}
        page = requests.get(f"{sb.url}/oauth/connect", params=params, timeout=5)
        assert page.status_code == 200 and "Allow" in page.text
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        deny = requests.post(f"{sb.url}/oauth/connect", data={**params, "decision": "deny"},
                             allow_redirects=False, timeout=5)
        assert parse_qs(urlsplit(deny.headers["Location"]).query)["error"] == ["access_denied"]
        code = authorize(sb, challenge, state=evil_state)  # presses Allow
        assert code


@pytest.mark.parametrize("redirect", ["https://evil.example/cb", "javascript:alert(1)", ""])
def test_unregistered_redirect_uri_shows_an_error_and_never_redirects(sandbox: Sandbox, redirect) -> None:
    _, challenge = pkce_pair()
    r = requests.get(f"{sandbox.url}/oauth/connect", allow_redirects=False, timeout=5, params={
        "response_type": "code", "client_id": sandbox.keystring, "redirect_uri": redirect, "scope": SCOPES,
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert r.status_code == 400 and "Location" not in r.headers


def test_plain_pkce_method_is_refused_via_redirect(sandbox: Sandbox) -> None:
    r = requests.get(f"{sandbox.url}/oauth/connect", allow_redirects=False, timeout=5, params={
        "response_type": "code", "client_id": sandbox.keystring, "redirect_uri": REDIRECT, "scope": SCOPES,
        "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "plain"})
    assert r.status_code == 302
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["error"] == ["invalid_request"] and q["state"] == ["s"] and "code" not in q
