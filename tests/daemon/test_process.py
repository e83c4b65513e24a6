"""`kaalwatch run` as a real process: health file, single instance, signals, and a part failing alone."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.daemon.conftest import DaemonProcess, wait_for, write_config

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
