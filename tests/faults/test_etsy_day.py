"""A simulated day of sync against the real sandbox over loopback, with every kind of Etsy trouble.

Time is sped up: the sandbox clock is frozen and only moves when the test advances it (one sync per
simulated minute) or when the client "sleeps" (its backoff and rate-limit waits advance that clock instead
of the wall clock). Latency faults and client timeouts are the only real waits (well under a second each).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import connect
from kaalwatch.etsy.ratelimit import RateLimiter
from kaalwatch.etsy.tokens import TokenStore
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import SyncReport, sync_once

pytestmark = pytest.mark.slow

DAY = 86_400
ETSY_DAILY_LIMIT = 400  # the sandbox's per-holder limit: small, so a second process can use it up
OUR_UA = "kaalwatch/"


def etsy_settings(settings: Settings, sb: Sandbox, workspace: Path, **etsy: object) -> Settings:
    values = {"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret,
              "scopes": ("transactions_r", "shops_r", "listings_r"), "redirect_port": 0, "rate_per_second": 8.0,
              "rate_per_day": 10_000, "max_retries": 4, "timeout_seconds": 0.4, **etsy}
    return dataclasses.replace(settings, workspace=workspace, etsy=dataclasses.replace(settings.etsy, **values))


def browser_get(url: str) -> object:
    """The "browser" of the OAuth flow: the sandbox's consent is auto-approved, so a GET completes it."""
    return requests.get(url, timeout=10)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox(seed=7, auto_approve=True, clock=Clock(frozen=True), rate_per_second=10,
                 rate_per_day=ETSY_DAILY_LIMIT)
    sb.start()
    yield sb
    sb.stop()


def make_client(s: Settings, ws: Workspace, sb: Sandbox) -> EtsyClient:
    # The client's clock and sleep are the sandbox's: a 30 s backoff costs no real time.
    limiter = RateLimiter(s.etsy.rate_per_second, s.etsy.rate_per_day, clock=sb.clock.now, sleep=sb.advance)
    return EtsyClient.from_settings(s, ws, clock=sb.clock.now, sleep=sb.advance, limiter=limiter)


def use_up_the_daily_limit(sb: Sandbox, ws: Workspace) -> int:
    """Another process holding the same token spends what is left of today's budget (not counted as ours)."""
    token = TokenStore(ws).load()
    assert token is not None
    headers = {"x-api-key": sb.api_key, "Authorization": f"Bearer {token.access_token}",
               "User-Agent": "another-process"}
    spent = 0
    with requests.Session() as session:
        while spent < 4 * ETSY_DAILY_LIMIT:
            answer = session.get(f"{sb.url}/v3/application/users/me", headers=headers, timeout=10)
            spent += 1
            if answer.status_code == 429 and "daily" in answer.text:
                return spent
            if answer.status_code == 429:
                sb.advance(1)  # the per-second window; this other process is patient
    raise AssertionError("the sandbox never reported the daily limit")


def max_in_a_rolling_day(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - DAY:
            start += 1
        best = max(best, end - start + 1)
    return best


def receipts_in(ws: Workspace) -> collections.Counter[int]:
    """How many order folders hold each receipt (read from the manifests, not the index)."""
    found: collections.Counter[int] = collections.Counter()
    for _folder, order in ws.iter_orders():
        assert not isinstance(order, Exception), order
        found[order.receipt_id] += 1
    return found


def test_a_day_of_etsy_trouble_loses_no_order_never_exceeds_the_budget_and_asks_for_auth_exactly_when_needed(
        tmp_path: Path, settings: Settings, sandbox: Sandbox) -> None:
    sb = sandbox
    s = etsy_settings(settings, sb, tmp_path / "ws")
    ws = Workspace(s)
    ws.create()
    connect(s, ws, browser_get, output=lambda line: None)
    client = make_client(s, ws, sb)
    log: list[tuple[int, str, SyncReport]] = []
    revoked = False

    def now() -> datetime:
        return datetime.fromtimestamp(sb.clock.now(), UTC)

    phases: dict[int, Callable[[], None]] = {
        2: lambda: sb.inject_fault(status=429, share=0.6, count=12),  # a storm of per-second 429s
        5: lambda: sb.inject_fault(status=500, share=0.5, count=8),
        8: lambda: sb.inject_fault(latency=0.8, count=2),  # beyond the client's 0.4 s timeout
        10: lambda: sb.inject_fault(drop=True, count=3),  # connections dropped without an answer
        12: sb.expire_tokens,  # the hourly expiry: a refresh, never a re-auth
        14: lambda: use_up_the_daily_limit(sb, ws) and None,
        19: lambda: sb.advance(DAY),  # the rolling day frees up (and every token expires meanwhile)
        22: sb.revoke_all_tokens,  # the owner changed their Etsy password
    }
    try:
        for minute in range(30):
            if minute in phases:
                phases[minute]()
            if minute == 22:
                revoked = True
            if minute == 26:  # the owner runs `kaalwatch auth` again; the daemon makes a fresh client
                connect(s, ws, browser_get, output=lambda line: None)
                client.close()
                client = make_client(s, ws, sb)
                revoked = False
            if minute % 3 == 1:
                sb.add_order(uploads=1)
            report = sync_once(ws, s, client, now=now)
            log.append((minute, "revoked" if revoked else "ok", report))
            assert report.needs_reauth == revoked, (minute, report.summary())
            assert bool(ws.read_state("sync").get("needs_reauth")) == revoked, minute
            sb.advance(60)
        sb.clear_faults()
        for _ in range(2):  # a quiet end of the day: whatever was postponed (downloads, pages) catches up
            report = sync_once(ws, s, client, now=now)
            assert report.fatal is None, report.summary()
            sb.advance(60)
    finally:
        client.close()

    # Every order the sandbox has that is work for us is in the workspace exactly once: compare with a
    # fault-free first import of the same shop into a fresh workspace.
    ref_s = etsy_settings(settings, sb, tmp_path / "reference")
    ref_ws = Workspace(ref_s)
    ref_ws.create()
    connect(ref_s, ref_ws, browser_get, output=lambda line: None)
    sb.advance(DAY)  # a fresh budget for the reference run
    with make_client(ref_s, ref_ws, sb) as ref_client:
        assert sync_once(ref_ws, ref_s, ref_client, now=now).fatal is None
    expected = set(receipts_in(ref_ws))
    found = receipts_in(ws)
    assert len(expected) >= 15, "the day should have brought a fair number of orders"
    assert set(found) == expected
    assert [rid for rid, count in found.items() if count != 1] == []
    for rid in expected:  # and each order as complete as the reference: same jobs, references downloaded
        ours, ref = ws.load(rid), ref_ws.load(rid)
        assert [j.job_id for j in ours.jobs] == [j.job_id for j in ref.jobs]
        assert sorted((r.name, r.status) for r in ours.references) == sorted((r.name, r.status) for r in ref.references)
        events = [(e.event, e.job_id) for e in ours.history if e.event == "order_created"]
        assert len(events) == 1
    ref_ws.close()

    # The daily budget held: Etsy's limit was reached (by another process), and our client then waited
    # for the window instead of hammering.
    ours_sent = [r for r in sb.requests if r.headers.get("User-Agent", r.headers.get("user-agent", "")).startswith(
        OUR_UA) and r.operation not in (None, "file", "oauthConnect")]
    assert max_in_a_rolling_day([r.time for r in ours_sent]) <= ETSY_DAILY_LIMIT
    daily_429 = [r for r in ours_sent if r.status == 429 and r.time < sb.clock.now() - DAY]
    assert len(daily_429) <= 1, "after Etsy said the day was used up, the client kept asking"
    day = "\n".join(f"{m:2d} {state} {rep.summary()}" for m, state, rep in log)
    hit_limit = [m for m, _, rep in log if rep.fatal and "daily" in rep.fatal]
    assert hit_limit == [14, 15, 16, 17, 18], day  # from the moment it was used up until the window rolled
    assert sum(rep.api_calls for m, _, rep in log if 15 <= m <= 18) == 0, day  # waiting, not asking
    ws.close()
