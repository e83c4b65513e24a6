"""What the user reads when Etsy says no: true, and with the fix (the client, `kaalwatch auth`, `auth status`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from kaalwatch.errors import AuthError, EtsyError, EtsyNotFoundError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection, _exchange_refused, connect
from kaalwatch.etsy.tokens import TokenStore
from kaalwatch.sandbox import Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.etsy.test_client import RECEIPTS, Sleeps
from tests.support.etsy_shop import browser_get

ROOT = Path(__file__).resolve().parents[2]


def test_a_500_is_etsys_server_failing_with_its_status(sandbox: Sandbox, connected: Connection,
                                                       make_client: Callable[..., EtsyClient]) -> None:
    client = make_client(sleep=Sleeps())
    sandbox.inject_fault(status=500, paths=RECEIPTS)
    with pytest.raises(EtsyError) as caught:
        client.get_shop_receipts(sandbox.shop_id)
    text = str(caught.value)
    assert text.startswith("Etsy's server failed getShopReceipts with HTTP 500 (Internal Server Error)")
    assert "Etsy's side" in text and "did not answer" not in text


def test_silence_is_still_called_silence(sandbox: Sandbox, connected: Connection,
                                         make_client: Callable[..., EtsyClient]) -> None:
    client = make_client(sleep=Sleeps())
    sandbox.inject_fault(status=500, count=2, paths=RECEIPTS)  # a 500, then nothing at all: the last word counts
    sandbox.inject_fault(drop=True, paths=RECEIPTS)
    with pytest.raises(EtsyError, match=r"did not answer getShopReceipts after 5 attempts \(connection failed\)"):
        client.get_shop_receipts(sandbox.shop_id)


def test_a_404_on_receipts_says_which_shop_trouble_it_likely_is(sandbox: Sandbox, connected: Connection,
                                                                make_client: Callable[..., EtsyClient]) -> None:
    with pytest.raises(EtsyNotFoundError) as caught:
        make_client().get_shop_receipts(sandbox.shop_id + 1)
    text = str(caught.value)
    assert f"Etsy found no such shop for getShopReceipts (Shop with shop_id {sandbox.shop_id + 1} not found.)" in text
    assert "transactions_r" in text and "kaalwatch auth status" in text


def cli_env(sandbox: Sandbox, ws: Workspace, **extra: str) -> dict[str, str]:
    return {**os.environ, "KAALWATCH_WORKSPACE": str(ws.root), "KAALWATCH_ETSY_BASE_URL": sandbox.url,
            "KAALWATCH_ETSY_KEYSTRING": sandbox.keystring, "KAALWATCH_ETSY_SHARED_SECRET": sandbox.shared_secret,
            "KAALWATCH_ETSY_REDIRECT_PORT": "3003", "KAALWATCH_CONFIG": os.devnull, **extra}


def kaalwatch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kaalwatch", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=False)


def test_an_expired_code_during_auth_says_start_over_not_run_auth(sandbox: Sandbox, sb_settings: Settings,
                                                                   sb_ws: Workspace) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "auth", "--no-browser"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env(sandbox, sb_ws), cwd=ROOT)
    url = ""
    while not url:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        url = line.strip() if "/oauth/connect?" in line else ""
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    sandbox.advance(3600)  # the user came back from lunch before pasting
    _out, err = proc.communicate(location + "\n", timeout=60)
    assert proc.returncode == 9
    assert err.strip().splitlines() == [
        "kaalwatch: error: Etsy refused this sign-in's authorization code (invalid_grant: code has expired) "
        "(start over and finish within a few minutes: a code works once, shortly, and only with the redirect "
        "address it was issued for)"]
    assert TokenStore(sb_ws).load() is None


def test_a_refused_client_during_auth_points_at_the_app_credentials() -> None:
    refused = _exchange_refused(AuthError("Etsy refused the credentials for oauthToken (invalid_client: client_id "
                                          "is not a known application)", hint="run `kaalwatch auth`"))
    assert str(refused).startswith("Etsy refused the app's credentials while signing in (")
    assert "invalid_client" in str(refused) and "kaalwatch auth" not in str(refused)
    assert "--keystring/--shared-secret" in str(refused)


def test_auth_status_after_a_revoked_grant_says_so_and_what_to_do(sandbox: Sandbox, connected: Connection,
                                                                  sb_settings: Settings, sb_ws: Workspace) -> None:
    env = cli_env(sandbox, sb_ws)
    assert kaalwatch(["sync"], env).returncode == 0
    fine = kaalwatch(["auth", "status"], env)
    assert fine.returncode == 0 and "valid for" in fine.stdout and "note:" not in fine.stdout, fine.stderr
    sandbox.revoke_all_tokens()  # the owner changed the Etsy password
    assert kaalwatch(["sync"], env).returncode == 9
    assert json.loads((sb_ws.state_dir / "sync.json").read_text())["needs_reauth"] is True

    revoked = kaalwatch(["auth", "status"], env)
    assert revoked.returncode == 9
    assert "valid for" not in revoked.stdout and "days old" not in revoked.stdout
    assert "access token: no longer accepted: Etsy revoked the connection (invalid_grant" in revoked.stdout
    assert "run `kaalwatch auth` to connect the shop again" in revoked.stdout
    assert revoked.stderr.strip() == ("kaalwatch: error: Etsy no longer accepts this shop's connection "
                                      "(run `kaalwatch auth` to connect again)")

    # Etsy unreachable now: the refusal the sync recorded is what is true, not the token's expiry time.
    sandbox.inject_fault(drop=True)
    offline = kaalwatch(["auth", "status"], cli_env(sandbox, sb_ws, KAALWATCH_ETSY_MAX_RETRIES="0"))
    sandbox.clear_faults()
    assert offline.returncode == 9 and "valid for" not in offline.stdout
    assert "access token: no longer accepted: the last sync at " in offline.stdout
    assert "could not check with Etsy now: Etsy did not answer getMe" in offline.stdout

    # Connected again: nothing of the old refusal is shown.
    connect(sb_settings, sb_ws, browser_get, output=lambda line: None)
    again = kaalwatch(["auth", "status"], env)
    assert again.returncode == 0 and "valid for" in again.stdout
    assert "no longer accepted" not in again.stdout and "refused" not in again.stdout



def test_auth_status_without_app_credentials_blames_them_not_etsy(sandbox: Sandbox, connected: Connection,
                                                                  sb_ws: Workspace) -> None:
    done = kaalwatch(["auth", "status"], cli_env(sandbox, sb_ws, KAALWATCH_ETSY_SHARED_SECRET=""))
    assert done.returncode == 9 and done.stdout == ""
    assert "keystring and shared secret are not set" in done.stderr and "revoked" not in done.stderr
