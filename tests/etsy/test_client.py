"""The client against the sandbox over real HTTP: auth headers, refresh, rotation, every fault kind, errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch.errors import AuthError, EtsyError, EtsyForbiddenError, EtsyNotFoundError, EtsyRateLimitError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection, connect
from kaalwatch.etsy.tokens import TokenStore
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.support.etsy_shop import browser_get, sandbox_settings

RECEIPTS = "/v3/application/shops/*/receipts"


class Sleeps(list):
    """An injected ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_calls_carry_key_and_bearer_and_are_counted(sandbox: Sandbox, connected: Connection,
                                                    make_client: Callable[..., EtsyClient]) -> None:
    client = make_client()
    sandbox.clear_requests()
    me = client.get_me()
    assert me == {"user_id": sandbox.user_id, "shop_id": sandbox.shop_id}
    assert client.calls == 1
    (req,) = sandbox.requests
    assert req.headers["x-api-key"] == f"{sandbox.keystring}:***"  # the sandbox redacts; both parts were sent
    assert req.headers["authorization"].startswith(f"Bearer {sandbox.user_id}.")


def test_expired_token_is_refreshed_once_and_rotation_persisted_first(
        sandbox: Sandbox, connected: Connection, sb_ws: Workspace, make_client: Callable[..., EtsyClient]) -> None:
    store = TokenStore(sb_ws)
    before = store.load()
    assert before is not None
    client = make_client()
    sandbox.expire_tokens()
    sandbox.clear_requests()
    client.get_shop_receipts(sandbox.shop_id, limit=5)
    ops = [(r.operation, r.status) for r in sandbox.requests]
    assert ops == [("getShopReceipts", 401), ("oauthToken", 200), ("getShopReceipts", 200)]
    after = store.load()
    assert after is not None and after.refresh_token != before.refresh_token
    assert after.access_token == client.tokens().access_token
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_token_refreshed_before_expiry_without_a_401(sandbox: Sandbox, connected: Connection,
                                                     make_client: Callable[..., EtsyClient]) -> None:
    now = [0.0]
    client = make_client()
    now[0] = client.tokens().expires_at - 30  # inside the early-refresh window
    client.clock = lambda: now[0]
    sandbox.clear_requests()
    client.get_me()
    assert [r.operation for r in sandbox.requests] == ["oauthToken", "getMe"]


def test_revoked_grant_says_run_auth(sandbox: Sandbox, connected: Connection,
                                     make_client: Callable[..., EtsyClient]) -> None:
    client = make_client()
    sandbox.revoke_all_tokens()
    with pytest.raises(AuthError, match="kaalwatch auth") as info:
        client.get_me()
    assert "invalid_grant" in str(info.value)


@pytest.mark.parametrize("fault", [
    {"status": 500, "count": 2}, {"status": 503, "count": 1}, {"drop": True, "count": 2},
    {"status": 429, "count": 3},
])
def test_transient_faults_are_retried_with_method_and_body_intact(
        sandbox: Sandbox, connected: Connection, make_client: Callable[..., EtsyClient], fault: dict) -> None:
    sleeps = Sleeps()
    client = make_client(sleep=sleeps)
    sandbox.inject_fault(paths="/v3/application/scopes", **fault)
    sandbox.clear_requests()
    scopes = client.token_scopes()
    assert "transactions_r" in scopes
    reqs = sandbox.requests
    assert all(r.method == "POST" and r.form.get("token") == "***" for r in reqs)
    assert len(reqs) == fault["count"] + 1 and client.calls == len(reqs)
    assert len(sleeps) == fault["count"]


def test_timeouts_are_retried(sandbox: Sandbox, connected: Connection, sb_settings: Settings,
                              make_client: Callable[..., EtsyClient]) -> None:
    import dataclasses

    fast = dataclasses.replace(sb_settings, etsy=dataclasses.replace(sb_settings.etsy, timeout_seconds=0.2))
    client = make_client(settings=fast, sleep=Sleeps())
    sandbox.inject_fault(latency=1.0, count=1, paths="/v3/application/users/me")
    assert client.get_me()["shop_id"] == sandbox.shop_id


def test_gives_up_after_the_bound_with_a_clear_error(sandbox: Sandbox, connected: Connection,
                                                     make_client: Callable[..., EtsyClient]) -> None:
    sleeps = Sleeps()
    client = make_client(sleep=sleeps)
    sandbox.inject_fault(status=500, paths=RECEIPTS)
    with pytest.raises(EtsyError, match=r"server failed getShopReceipts with HTTP 500 .*; gave up after 5 attempts"):
        client.get_shop_receipts(sandbox.shop_id)
    assert len(sleeps) == 4 and max(sleeps) <= 30
    assert sleeps == sorted(sleeps) or max(sleeps) > min(sleeps)  # backoff grows (with jitter)


def test_daily_limit_says_when_to_retry(settings: Settings) -> None:
    with Sandbox(seed=1, auto_approve=True, clock=Clock(frozen=True), rate_per_second=1000, rate_per_day=4) as sb:
        s = sandbox_settings(settings, sb)
        ws = Workspace(s)
        ws.create()
        connect(s, ws, browser_get, output=lambda line: None)  # getMe + getShop spend 2 of the 4
        with EtsyClient.from_settings(s, ws, sleep=Sleeps()) as client:
            client.get_me()
            client.get_me()
            with pytest.raises(EtsyRateLimitError, match=r"daily request (limit|budget).*retry after") as info:
                client.get_me()
            assert info.value.retry_at is not None
            calls = client.calls
            with pytest.raises(EtsyRateLimitError):  # no further call goes out once Etsy said so
                client.get_me()
            assert client.calls == calls
        with EtsyClient.from_settings(s, ws, sleep=Sleeps()) as fresh:  # knows nothing yet: Etsy's 429 tells it
            with pytest.raises(EtsyRateLimitError, match="retry after"):
                fresh.get_me()
            assert sb.requests[-1].status == 429 and fresh.calls == 1
        ws.close()


def test_missing_scope_is_named(settings: Settings, sandbox: Sandbox) -> None:
    s = sandbox_settings(settings, sandbox, scopes=("shops_r", "listings_r"))
    ws = Workspace(s)
    ws.create()
    connect(s, ws, browser_get, output=lambda line: None)
    with EtsyClient.from_settings(s, ws) as client, pytest.raises(EtsyForbiddenError, match="transactions_r"):
        client.get_shop_receipts(sandbox.shop_id)
    ws.close()


def test_keystring_without_shared_secret_is_explained(sandbox: Sandbox, connected: Connection, sb_settings: Settings,
                                                      sb_ws: Workspace) -> None:
    import dataclasses

    wrong = dataclasses.replace(sb_settings.etsy, shared_secret="not-the-secret")
    with EtsyClient(wrong, TokenStore(sb_ws)) as client, pytest.raises(EtsyForbiddenError, match="shared_secret"):
        client.get_me()
    empty = dataclasses.replace(sb_settings.etsy, shared_secret="")
    with EtsyClient(empty, TokenStore(sb_ws)) as client, pytest.raises(AuthError, match="shared secret"):
        client.get_me()


def test_not_found_and_batches(sandbox: Sandbox, connected: Connection,
                               make_client: Callable[..., EtsyClient]) -> None:
    client = make_client()
    with pytest.raises(EtsyNotFoundError):
        client.get_listing_personalization(999_999)
    sandbox.clear_requests()
    listings = client.get_listings_by_listing_ids([*sandbox.shop.listings, 123])
    assert {x["listing_id"] for x in listings} == set(sandbox.shop.listings)
    assert [r.operation for r in sandbox.requests] == ["getListingsByListingIds"]


def test_pagination_reads_every_page(sandbox: Sandbox, connected: Connection,
                                     make_client: Callable[..., EtsyClient]) -> None:
    client = make_client()
    pages = list(client.iter_receipt_pages(sandbox.shop_id, limit=7, sort_on="updated", sort_order="asc"))
    ids = [r["receipt_id"] for p in pages for r in p.results]
    assert sorted(ids) == sandbox.receipt_ids and len(pages) == -(-len(ids) // 7)


ROTATE = textwrap.dedent("""
    import dataclasses, json, sys
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace
    from kaalwatch.etsy.client import EtsyClient
    s = load_settings(env={}, use_default_path=False)
    s = dataclasses.replace(s, workspace=__import__("pathlib").Path(sys.argv[1]),
                            etsy=dataclasses.replace(s.etsy, **json.loads(sys.argv[2])))
    ws = Workspace(s)
    with EtsyClient.from_settings(s, ws) as client:
        print(client.get_me()["shop_id"])
""")


def test_two_processes_never_refresh_at_once(sandbox: Sandbox, connected: Connection, sb_settings: Settings,
                                             sb_ws: Workspace, tmp_path: Path) -> None:
    sandbox.expire_tokens()
    sandbox.clear_requests()
    etsy = json.dumps({"base_url": sandbox.url, "keystring": sandbox.keystring,
                       "shared_secret": sandbox.shared_secret})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", ROTATE, str(sb_settings.workspace), etsy], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(out.strip() == str(sandbox.shop_id) for out, _ in outs)
    refreshes = [r for r in sandbox.requests if r.operation == "oauthToken"]
    # Each process hit the expired token at most once; only one refresh happened, the other reused it.
    assert [r.status for r in refreshes] == [200]
    with EtsyClient.from_settings(sb_settings, sb_ws) as client:
        assert client.get_me()["shop_id"] == sandbox.shop_id  # the stored pair is the live one
