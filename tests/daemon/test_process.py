"""`kaalwatch run` as a real process: health file, single instance, signals, and a part failing alone."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.daemon.conftest import DaemonProcess, write_config
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def workspace(tmp_path: Path, settings: Settings) -> Workspace:
    ws = Workspace(dataclasses.replace(settings, workspace=tmp_path / "ws"))
    ws.create()
    return ws


def test_second_run_names_the_first_and_sigterm_exits_zero_quickly(
        workspace: Workspace, tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "config.yaml", workspace.root)
    first = daemon_factory(config, workspace.root, "first").start()
    health = first.wait_healthy()
    assert health["pid"] == first.pid

    second = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "run"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 3, second.stderr
    assert f"already running on {workspace.root} (pid {first.pid})" in second.stderr

    code, took = first.terminate()
    assert code == 0, first.output()
    assert took < 10
    final = first.health()
    assert final["running"] is False and final["watcher_alive"] is False
    assert not (workspace.tool_dir / "daemon.pid").exists()


def test_sigint_is_a_clean_stop_too(workspace: Workspace, tmp_path: Path,
                                    daemon_factory: Callable[..., DaemonProcess]) -> None:
    config = write_config(tmp_path / "config.yaml", workspace.root)
    proc = daemon_factory(config, workspace.root).start()
    proc.wait_healthy()
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(timeout=10) == 0, proc.output()


def test_etsy_down_is_reported_and_retried_while_the_daemon_keeps_beating(
        workspace: Workspace, tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    # etsy.base_url points at the discard port: nothing listens there.
    config = write_config(tmp_path / "config.yaml", workspace.root)
    proc = daemon_factory(config, workspace.root).start()
    proc.wait_healthy()
    failed = wait_for(lambda: (h := proc.health()).get("last_sync_result") and h, 30, what="a sync result")
    assert failed["last_sync_result"].startswith(("failed", "paused")), failed
    assert any("sync:" in e for e in failed["errors"]), failed["errors"]
    first_update = failed["updated_at"]
    wait_for(lambda: proc.health().get("updated_at", "") > first_update, 15, what="the next heartbeat")
    assert proc.proc is not None and proc.proc.poll() is None
    code, _ = proc.terminate()
    assert code == 0


def test_run_on_a_missing_workspace_says_init(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", tmp_path / "nowhere")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "run"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "kaalwatch init" in result.stderr
    assert time.monotonic() - started < 30


def test_dead_etsy_and_a_broken_manifest_do_not_stop_saves_becoming_versions(
        workspace: Workspace, tmp_path: Path, daemon_factory: Callable[..., DaemonProcess],
        make_order: Callable[..., Any]) -> None:
    import requests
    from PIL import Image

    receipt_id = make_order().receipt_id
    folder = workspace.add_order(make_order(receipt_id=receipt_id))
    broken = workspace.orders_dir / "999 broken"
    broken.mkdir()
    (broken / "order.yaml").write_text("receipt_id: [unclosed\n")
    config = write_config(tmp_path / "config.yaml", workspace.root)  # Etsy at a port nobody listens on
    proc = daemon_factory(config, workspace.root).start()
    proc.wait_healthy()
    Image.new("RGB", (800, 600), "navy").save(folder / "sketch.png")

    def versioned() -> Any:
        job = workspace.load(receipt_id).jobs[0]
        return job.versions and job.versions[0].preview

    wait_for(versioned, 30, what="a version of the save while Etsy is down")
    health = wait_for(lambda: (h := proc.health()).get("last_sync_result") and h, 30, what="a sync result")
    assert health["watcher_alive"] is True
    assert not health["last_sync_result"].startswith("sync:")
    page = requests.get(wait_for(lambda: proc.health().get("review_url"), 10), timeout=10)
    assert page.status_code == 200
    status = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "status"],
                            capture_output=True, text=True, timeout=60)
    assert f"daemon: pid {proc.pid}" in status.stdout and "watcher alive" in status.stdout
    assert "broken manifest" in status.stdout
    code, _ = proc.terminate()
    assert code == 0
    assert (broken / "order.yaml").read_text() == "receipt_id: [unclosed\n"  # left as it was


def test_revoked_token_pauses_sync_until_reconnected(connected: Any, daemon_factory: Callable[..., DaemonProcess]
                                                     ) -> None:
    import requests

    from kaalwatch.etsy import oauth
    from kaalwatch.settings import load_settings

    ws, sb = connected.ws, connected.sandbox
    proc = daemon_factory(connected.config, ws.root).start()
    proc.wait_healthy()
    wait_for(lambda: (proc.health().get("last_sync_result") or "").startswith("sync:"), 30, what="a first sync")
    sb.revoke_all_tokens()
    paused = wait_for(lambda: (h := proc.health()).get("sync_paused") and h, 30, what="sync to pause")
    assert "kaalwatch auth" in paused["sync_paused"]
    assert any("kaalwatch auth" in e for e in paused["errors"])
    # While paused the daemon does not keep knocking on Etsy's door.
    calls = len(sb.requests)
    first_update = proc.health()["updated_at"]
    # Two sync intervals (3 s each in the test config) go by: a heartbeat later than that proves it.
    later = time.monotonic() + 7
    wait_for(lambda: time.monotonic() > later and proc.health().get("updated_at", "") > first_update, 20,
             what="heartbeats across several sync intervals")
    assert len(sb.requests) == calls

    settings = load_settings(connected.config, env={}, use_default_path=False)
    oauth.connect(settings, ws, open_url=lambda url: requests.get(url, timeout=10), output=lambda _l: None, port=0)
    wait_for(lambda: proc.health().get("sync_paused") is None
             and (proc.health().get("last_sync_result") or "").startswith("sync:"), 30, what="sync to resume")
    code, _ = proc.terminate()
    assert code == 0


def test_etsy_outage_backs_off_then_recovers(connected: Any, daemon_factory: Callable[..., DaemonProcess]) -> None:
    ws, sb = connected.ws, connected.sandbox
    proc = daemon_factory(connected.config, ws.root).start()
    proc.wait_healthy()
    wait_for(lambda: (proc.health().get("last_sync_result") or "").startswith("sync:"), 30, what="a first sync")
    sb.inject_fault(status=503)
    failing = wait_for(lambda: (h := proc.health()).get("last_sync_result", "").startswith("failed") and h, 30,
                       what="a failed sync")
    assert "sync" in failing["failing"]
    wait_for(lambda: any("next attempt in 2 run(s)" in e for e in proc.health()["errors"]), 30,
             what="the second failure to skip a run")
    assert proc.health()["watcher_alive"] is True  # the other parts carry on
    sb.clear_faults()
    recovered = wait_for(lambda: (h := proc.health()).get("last_sync_result", "").startswith("sync:") and h, 30,
                         what="sync to recover")
    assert "sync" not in recovered["failing"]
    code, _ = proc.terminate()
    assert code == 0
