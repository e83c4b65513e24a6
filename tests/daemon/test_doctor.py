"""`kaalwatch doctor`: each check on crafted inputs, then the command end to end on a real workspace."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaalwatch import doctor
from kaalwatch.settings import Settings, WatcherSettings, WatermarkSettings
from kaalwatch.store import Workspace
from tests.daemon.conftest import write_config

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw
41 40 0:36 / /mnt/nas/local\\040disk rw - ext4 /dev/sdb1 rw
"""


def test_filesystem_type_picks_the_longest_matching_mount() -> None:
    assert doctor.filesystem_type(Path("/home/kaal/orders"), MOUNTINFO) == "ext4"
    assert doctor.filesystem_type(Path("/mnt/nas/KaalOrders"), MOUNTINFO) == "nfs4"
    assert doctor.filesystem_type(Path("/mnt/nas/local disk/K"), MOUNTINFO) == "ext4"
    assert doctor.filesystem_type(Path("/mnt/nasty"), MOUNTINFO) == "ext4"  # a prefix is not a parent


def test_network_filesystem_advises_polling(settings: Settings) -> None:
    check = doctor.check_filesystem(settings, fstype="nfs4")
    assert check.ok and check.warning and "watcher.backend: polling" in check.fix
    polled = dataclasses.replace(settings, watcher=WatcherSettings(backend="polling"))
    assert not doctor.check_filesystem(polled, fstype="cifs").warning
    assert not doctor.check_filesystem(settings, fstype="ext4").warning


def test_inotify_limit_against_folder_count(settings: Settings) -> None:
    assert not doctor.check_inotify(settings, limit=8192, folders=9000).ok
    half = doctor.check_inotify(settings, limit=8192, folders=5000)
    assert half.ok and half.warning and "max_user_watches" in half.fix
    assert not doctor.check_inotify(settings, limit=8192, folders=100).warning


def test_inotify_counts_real_folders(ws: Workspace) -> None:
    for n in range(5):
        (ws.orders_dir / f"order {n}" / "references").mkdir(parents=True)
    assert doctor.count_folders(ws.orders_dir) == 11  # orders/ itself, 5 orders, 5 references folders
    assert "11 folders" in doctor.check_inotify(ws.settings, limit=1000).line


def test_disk_space_thresholds(settings: Settings) -> None:
    assert not doctor.check_disk(settings, free=50 * 1024**2).ok
    assert doctor.check_disk(settings, free=1024**3).warning
    assert not doctor.check_disk(settings, free=50 * 1024**3).warning


def test_port_in_use_is_reported_with_the_fix(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        busy = dataclasses.replace(settings, review=dataclasses.replace(settings.review, port=port))
        check = doctor.check_port(busy)
        assert not check.ok and "review.port" in check.fix
        assert doctor.check_port(busy, daemon_pid="123").ok  # our own daemon serving it is fine
    assert doctor.check_port(busy).ok


def test_missing_font_fails(settings: Settings, tmp_path: Path) -> None:
    assert doctor.check_fonts(settings).ok
    bad = dataclasses.replace(settings, watermark=WatermarkSettings(font=str(tmp_path / "nope.ttf")))
    assert not doctor.check_fonts(bad).ok


def test_missing_workspace_says_run_init(settings: Settings) -> None:
    check = doctor.check_workspace(settings)
    assert not check.ok and "kaalwatch init" in check.fix


def _doctor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "doctor", *args],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_doctor_command_on_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sync:\n  intervall_minutes: 3\n")
    result = _doctor(config)
    assert result.returncode == 1
    assert "[FAIL] config" in result.stdout and "did you mean 'interval_minutes'" in result.stdout


@pytest.mark.slow
def test_doctor_command_on_a_good_workspace_with_etsy_down(tmp_path: Path, settings: Settings) -> None:
    ws = Workspace(dataclasses.replace(settings, workspace=tmp_path / "ws"))
    ws.create()
    config = write_config(tmp_path / "config.yaml", ws.root)
    result = _doctor(config)
    lines = result.stdout.splitlines()
    assert any(line.startswith("[ok  ] workspace") for line in lines), result.stdout
    assert any(line.startswith("[FAIL] etsy") for line in lines), result.stdout
    assert result.returncode == 1
    offline = _doctor(config, "--offline")
    assert offline.returncode == 0, offline.stdout
    assert "All checks passed." in offline.stdout


@pytest.mark.slow
def test_etsy_check_against_the_sandbox(connected: Any) -> None:
    from kaalwatch.etsy.tokens import TokenStore
    from kaalwatch.settings import load_settings

    settings = load_settings(connected.config, env={}, use_default_path=False)
    ok = doctor.check_etsy(settings)
    assert ok.ok, ok.render()
    assert "token valid for shop" in ok.line and "transactions_r" in ok.line
    wants_shipping = dataclasses.replace(settings, delivery=dataclasses.replace(settings.delivery,
                                                                                create_shipment=True))
    missing = doctor.check_etsy(wants_shipping)
    assert not missing.ok and "transactions_w" in missing.line and "kaalwatch auth" in missing.fix
    TokenStore(connected.ws).path.unlink()
    gone = doctor._safe("etsy", lambda: doctor.check_etsy(settings))
    assert not gone.ok and "auth" in gone.render()
