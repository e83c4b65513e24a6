"""Issue 17's daily-limit attack: after Etsy's 429 with a day-long retry-after, nothing asks Etsy again until
the time passes — not ten daemon syncs with fresh clients, not a hand-run `kaalwatch sync` — and `status`,
`auth status` and the page header say until when."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.etsy.ratelimit import NotBefore
from kaalwatch.health import Health
from kaalwatch.sandbox import Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import sync_once
from kaalwatch.sync_job import SyncJob
from review_app import create_app

ROOT = Path(__file__).resolve().parents[2]


def _cli(args: list[str], sandbox: Sandbox, settings: Settings, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "none.yaml").write_text("{}\n")
    env = {**os.environ, "KAALWATCH_WORKSPACE": str(settings.workspace), "KAALWATCH_ETSY_BASE_URL": sandbox.url,
           "KAALWATCH_ETSY_KEYSTRING": sandbox.keystring, "KAALWATCH_ETSY_SHARED_SECRET": sandbox.shared_secret,
           "KAALWATCH_CONFIG": str(tmp_path / "none.yaml")}
    return subprocess.run([sys.executable, "-m", "kaalwatch", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60, check=False)


def test_a_daily_429_stops_every_request_until_the_time_passes(
        sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace, connected: Connection,
        make_client: Callable[..., EtsyClient], tmp_path: Path) -> None:
    assert sync_once(sb_ws, sb_settings, make_client(sleep=lambda s: None)).fatal is None  # orders arrive
    sandbox.limiter.per_day = 1  # already spent: the next call is Etsy's daily 429
    first = sync_once(sb_ws, sb_settings, make_client(sleep=lambda s: None))
    assert first.fatal and "daily request limit" in first.fatal
    assert [r.status for r in sandbox.requests][-1] == 429
    recorded = sb_ws.read_state("sync")["not_before"]
    assert recorded > time.time() + 86_000  # the sandbox's retry-after: about a day

    sandbox.clear_requests()
    # Ten syncs, each with a fresh client (what the daemon does after a failed sync).
    for _ in range(10):
        report = sync_once(sb_ws, sb_settings, make_client(sleep=lambda s: None))
        assert report.fatal and report.api_calls == 0
    # The daemon's own sync job: ten runs, no request, and not counted as failures (no backoff piles up).
    job = SyncJob(sb_ws, sb_settings, Health(), on_new_downloads=lambda: None)
    for _ in range(10):
        job.run()
    assert job.health.last_sync_result and "no Etsy request before" in job.health.last_sync_result
    assert job.backoff.failures == 0
    # A hand-run sync in another process.
    hand = _cli(["sync", "--no-downloads"], sandbox, sb_settings, tmp_path)
    assert hand.returncode != 0 and "daily request limit" in hand.stderr and "retry after" in hand.stderr
    assert sandbox.requests == []

    # Shown where the owner looks: status, auth status and the page header.
    status = _cli(["status"], sandbox, sb_settings, tmp_path)
    assert status.returncode == 0 and "Etsy: Etsy's daily request limit is used up: no Etsy request before" in \
        status.stdout
    assert "order(s) waiting" in status.stdout  # the first sync's orders still wait for their files
    auth = _cli(["auth", "status"], sandbox, sb_settings, tmp_path)
    assert "no Etsy request before" in auth.stdout
    page = create_app(sb_settings, sb_ws, {"TESTING": True, "KAALWATCH_AUTH_REQUIRED": False}).test_client()
    assert 'id="etsy-wait"' in page.get("/").get_data(as_text=True)
    assert sandbox.requests == []

    # Once the time has passed, syncing works again.
    sandbox.advance(86_401)
    sandbox.limiter.per_day = 1_000_000
    later = NotBefore(sb_ws, clock=lambda: recorded + 1)
    after = sync_once(sb_ws, sb_settings, make_client(sleep=lambda s: None, not_before=later))
    assert after.fatal is None and after.api_calls > 0
