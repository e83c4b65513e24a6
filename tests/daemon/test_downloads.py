"""Issue 17's slow-buyer-server attack against a real daemon process: six upload URLs that answer only after
20 s must not delay the next order's folder beyond one sync interval, nor that order's own files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch.sandbox.seed import PET_LISTING
from kaalwatch.settings import load_settings
from kaalwatch.store import Workspace
from tests.daemon.conftest import Connected, DaemonProcess, write_config
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

INTERVAL_SECONDS = 3.0  # sync.interval_minutes 0.05


def _has_order(ws: Workspace, receipt_id: int) -> bool:
    ws.refresh_index()
    return receipt_id in ws.receipt_ids()


def test_a_20_s_buyer_server_does_not_delay_the_next_order(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    sb, ws = connected.sandbox, connected.ws
    config = write_config(connected.config, ws.root,
                          etsy={"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret},
                          sync={"interval_minutes": INTERVAL_SECONDS / 60, "download_interval_seconds": 1.0})
    daemon = daemon_factory(config, ws.root).start()
    daemon.wait_healthy()
    wait_for(lambda: str(daemon.health().get("last_sync_result") or "").startswith("sync:"), 30,
             what="the first sync")
    # Six buyer files on a server that answers after 20 s (then with 404).
    sb.inject_fault(latency=20, paths="/_files/uploads/slow*")
    slow = sb.add_order(PET_LISTING, upload_urls=[f"{sb.url}/_files/uploads/slow{i}/photo.jpg" for i in range(6)])
    wait_for(lambda: _has_order(ws, slow["receipt_id"]), 2 * INTERVAL_SECONDS + 5, what="the slow order's folder")
    time.sleep(1.5)  # let the download queue start on the slow server before the next order is placed
    placed = time.monotonic()
    normal = sb.add_order(PET_LISTING, uploads=1)
    wait_for(lambda: _has_order(ws, normal["receipt_id"]), 30, interval=0.05, what="the next order's folder")
    delay = time.monotonic() - placed
    # One interval, plus the pass itself (a few calls to the local sandbox) and the polling above.
    assert delay <= INTERVAL_SECONDS + 1.5, f"the next order took {delay:.1f} s"

    def normal_files_done() -> bool:
        refs = Workspace(load_settings(config, env={}, use_default_path=False)).load(normal["receipt_id"]).references
        return bool(refs) and all(r.status == "ok" for r in refs)

    wait_for(normal_files_done, 15, interval=0.2, what="the next order's own files")
    still_slow = ws.load(slow["receipt_id"]).references
    assert any(r.status == "pending" for r in still_slow)  # the slow one is still being waited for, elsewhere
    print(f"next order foldered {delay:.2f} s after it was placed; sync interval {INTERVAL_SECONDS:g} s")
