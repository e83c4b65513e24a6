"""The whole PKCE flow against the sandbox: loopback callback, paste mode, state checks, no secret in output."""

from __future__ import annotations

import io
import logging
import stat

import pytest
import requests

from kaalwatch.errors import AuthError
from kaalwatch.etsy.oauth import connect, parse_redirect, pkce_pair
from kaalwatch.etsy.tokens import TokenStore, describe
from kaalwatch.logs import remove_handlers, scrub
from kaalwatch.sandbox import Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.support.etsy_shop import browser_get


def secrets_of(sandbox: Sandbox, ws: Workspace) -> list[str]:
    tokens = TokenStore(ws).load()
    assert tokens is not None
    return [tokens.access_token, tokens.refresh_token, tokens.access_token.split(".", 1)[1], sandbox.shared_secret]


def test_loopback_flow_stores_tokens_privately(sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # A command run by an earlier test may have left its scrubbing handlers on the root logger; they rewrite
    # records in place, and this test must see what the code logged before any scrubbing.
    remove_handlers()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # kaalwatch.logs.setup() quiets it in other tests
    lines: list[str] = []
    conn = connect(sb_settings, sb_ws, browser_get, output=lines.append)
    assert (conn.shop_id, conn.user_id, conn.shop_name) == (sandbox.shop_id, sandbox.user_id, "KaalStudioSandbox")
    assert set(conn.scopes) == {"transactions_r", "transactions_w", "shops_r", "listings_r"}
    store = TokenStore(sb_ws)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert any(line.startswith(f"{sandbox.url}/oauth/connect?") for line in lines)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kaalwatch"))
    everything = "\n".join(lines) + ours + repr(store.load()) + "\n".join(describe(store.load()))
    for secret in secrets_of(sandbox, sb_ws):
        assert secret not in everything
    assert "code=" not in ours
    # The test's own "browser" (urllib3 at DEBUG) logs the callback URL: the scrub filter hides its code.
    code = caplog.text.split("/callback?code=", 1)[1].split("&", 1)[0]
    assert code and code not in scrub(caplog.text)


class PastingUser(io.StringIO):
    """Reads the printed consent URL, "clicks Allow" and pastes the address the browser was sent to."""

    def __init__(self, printed: list[str], tamper: bool = False) -> None:
        super().__init__()
        self.printed = printed
        self.tamper = tamper

    def readline(self, *args: object) -> str:
        url = next(line for line in self.printed if "/oauth/connect?" in line)
        location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
        if self.tamper:
            location = location.replace("state=", "state=x")
        return location + "\n"


def test_paste_mode_prints_the_url_alone_and_reads_the_redirect(sandbox: Sandbox, sb_settings: Settings,
                                                                 sb_ws: Workspace) -> None:
    printed: list[str] = []
    opened: list[str] = []
    conn = connect(sb_settings, sb_ws, opened.append, paste=True, input_stream=PastingUser(printed),
                   output=printed.append)
    assert conn.shop_id == sandbox.shop_id and opened == []  # no browser in paste mode
    url_line = next(line for line in printed if "/oauth/connect?" in line)
    assert url_line == url_line.strip() and " " not in url_line  # a line of its own, copyable


def test_paste_mode_refuses_a_foreign_state(sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace) -> None:
    printed: list[str] = []
    with pytest.raises(AuthError, match="state"):
        connect(sb_settings, sb_ws, print, paste=True, input_stream=PastingUser(printed, tamper=True),
                output=printed.append)
    assert TokenStore(sb_ws).load() is None


def test_callback_ignores_forged_state_then_accepts_the_real_one(sandbox: Sandbox, sb_settings: Settings,
                                                                 sb_ws: Workspace) -> None:
    def browser(url: str) -> None:
        port = requests.get(url, allow_redirects=False, timeout=5).headers["Location"].split(":")[2].split("/")[0]
        forged = requests.get(f"http://127.0.0.1:{port}/callback?code=evil&state=nope", timeout=5)
        assert forged.status_code == 400
        requests.get(url, timeout=10)

    assert connect(sb_settings, sb_ws, browser, output=lambda line: None).shop_id == sandbox.shop_id


def test_denied_consent_is_a_clear_error() -> None:
    with pytest.raises(AuthError, match="did not grant"):
        parse_redirect("http://localhost:1/callback?error=access_denied&state=s", "s")


def test_pkce_pair_is_s256() -> None:
    import base64
    import hashlib

    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def test_status_warns_well_before_90_days(sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace) -> None:
    connect(sb_settings, sb_ws, browser_get, output=lambda line: None)
    tokens = TokenStore(sb_ws).load()
    assert tokens is not None
    fresh = "\n".join(describe(tokens, tokens.refresh_issued_at + 86_400))
    old = "\n".join(describe(tokens, tokens.refresh_issued_at + 80 * 86_400))
    assert "WARNING" not in fresh and "KaalStudioSandbox" in fresh and "transactions_r" in fresh
    assert "WARNING" in old and "10 days" in old
