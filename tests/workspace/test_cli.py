"""The command line: init, status, one-line errors with exit codes, and --help on every command."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch import lifecycle, logs
from kaalwatch.cli import COMMANDS, main
from kaalwatch.model import AddOn, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "kaalwatch", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **(env or {})})


def test_init_creates_config_and_workspace_and_refuses_to_overwrite(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "config.yaml"
    result = run_cli("--config", str(config), "init", "--workspace", str(tmp_path / "My Orders"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "My Orders" / "orders").is_dir() and (tmp_path / "My Orders" / ".kaalwatch").is_dir()
    assert f'workspace: "{tmp_path / "My Orders"}"' in config.read_text()
    before = config.read_text()
    again = run_cli("--config", str(config), "init")
    assert again.returncode == 2
    assert again.stderr.strip() == f"kaalwatch: error: {config} already exists (edit it, or pass --config NEW_PATH)"
    assert config.read_text() == before


def test_config_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("watcher:\n  backend: magic\n")
    result = run_cli("--config", str(config), "status")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "watcher.backend: expected one of auto, native, polling, got 'magic'" in result.stderr


def configured_workspace(tmp_path: Path) -> tuple[Path, Workspace]:
    """A created workspace and a config file naming it, as ``kaalwatch init`` leaves them."""
    workspace = tmp_path / "ws"
    config = tmp_path / "c.yaml"
    config.write_text(f"workspace: {workspace}\n")
    ws = Workspace(Settings(workspace=workspace))
    ws.create()
    return config, ws


def test_status_lists_active_jobs_by_ship_by_and_as_json(tmp_path: Path, make_order: Callable[..., Order]) -> None:
    config, ws = configured_workspace(tmp_path)
    late, soon, done = make_order(days=10), make_order(days=-1), make_order(days=3)
    for order in (late, soon, done):
        ws.add_order(order)
    with ws.edit(done.receipt_id) as order:
        lifecycle.cancel(order, "Canceled")
    ws.close()
    result = run_cli("--config", str(config), "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [job["receipt_id"] for job in data["jobs"]] == [soon.receipt_id, late.receipt_id]
    assert data["jobs"][0]["overdue"] is True and data["jobs"][1]["overdue"] is False
    table = run_cli("--config", str(config), "status")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert "SHIP BY" in lines[0] and str(soon.receipt_id) in lines[1] and "!" in lines[1]
    assert str(done.receipt_id) not in table.stdout
    assert "last sync: never" in table.stdout
    assert (ws.root / ".kaalwatch" / "logs").is_dir()


def test_status_lists_addons_paid_apart(tmp_path: Path, make_order: Callable[..., Order]) -> None:
    config, ws = configured_workspace(tmp_path)
    portrait, rush, stray = make_order(), make_order(jobs=0), make_order(jobs=0)
    for alone in (rush, stray):
        lifecycle.add_addon(alone, AddOn(transaction_id=str(alone.receipt_id), listing_id=5, title="Rush",
                                         workflow="rush"), rush_days=2, urgent=True)
    lifecycle.addons_applied(rush, portrait.receipt_id)
    for order in (portrait, rush, stray):
        ws.add_order(order)
    ws.close()
    table = run_cli("--config", str(config), "status")
    assert table.returncode == 0, table.stderr
    assert (f"add-ons paid apart: {rush.receipt_id} (Rush) — applied to {portrait.receipt_id}; complete it on Etsy"
            in table.stdout)
    assert f"add-ons paid apart: {stray.receipt_id} (Rush) — no open order of this buyer here" in table.stdout
    data = json.loads(run_cli("--config", str(config), "status", "--json").stdout)
    assert data["addons_paid_apart"] == [
        {"receipt_id": rush.receipt_id, "addons": ["Rush"], "applied_to": portrait.receipt_id},
        {"receipt_id": stray.receipt_id, "addons": ["Rush"], "applied_to": None},
    ]
    ws = Workspace(Settings(workspace=tmp_path / "ws"))
    with ws.edit(portrait.receipt_id) as order:
        lifecycle.cancel(order, "Canceled")
    ws.close()
    after = run_cli("--config", str(config), "status").stdout
    assert (f"{rush.receipt_id} (Rush) — applied to {portrait.receipt_id}, which was cancelled: refund it on Etsy"
            in after)


def test_status_shows_warnings_with_their_source_stop_markers_and_holds_without_countdown(
        tmp_path: Path, make_order: Callable[..., Order]) -> None:
    config, ws = configured_workspace(tmp_path)
    held, warned, refunded = make_order(days=-3), make_order(days=4), make_order(days=5)
    for order in (held, warned, refunded):
        ws.add_order(order)
    with ws.edit(held.receipt_id) as order:
        lifecycle.hold(order, held.jobs[0].job_id, "buyer away")
    with ws.edit(warned.receipt_id) as order:
        lifecycle.set_error(order, warned.jobs[0].job_id, "'a.png' cannot be read as an image", "watcher")
    with ws.edit(refunded.receipt_id) as order:
        lifecycle.set_etsy_status(order, "Partially Refunded")
    ws.close()
    data = {job["receipt_id"]: job for job in json.loads(run_cli("--config", str(config), "status", "--json").stdout)
            ["jobs"]}
    assert data[held.receipt_id]["days_left"] is None and data[held.receipt_id]["overdue"] is False
    assert data[held.receipt_id]["next"] == "On hold"
    assert data[warned.receipt_id]["warnings"] == [{"source": "watcher",
                                                    "message": "'a.png' cannot be read as an image"}]
    assert data[refunded.receipt_id]["marker"] == "partially refunded"
    table = run_cli("--config", str(config), "status").stdout
    assert "warning (folder watcher): 'a.png' cannot be read as an image" in table
    assert "STOP: partially refunded" in table


def test_status_on_a_missing_workspace_says_how_to_fix(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"workspace: {tmp_path / 'none'}\n")
    result = run_cli("--config", str(config), "status")
    assert result.returncode == 3
    assert "run `kaalwatch init` first" in result.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: kaalwatch {name}")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name}" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err


def test_log_lines_never_carry_secrets(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("urllib3", "watchdog", "PIL")})
    logs.setup("debug", tmp_path / "logs")
    try:
        log = logging.getLogger("kaalwatch.test")
        log.warning("x-api-key: abc123:topsecret Authorization: Bearer 1234.tok refresh_token=zz&a=1 code=xyz")
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = (tmp_path / "logs" / "kaalwatch.log").read_text()
    finally:  # leave logging as other tests expect it
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)
    for secret in ("abc123", "topsecret", "1234.tok", "zz", "xyz"):
        assert secret not in text
    assert text.count("***") == 4


def test_status_tells_whether_the_daemon_is_really_running() -> None:
    from datetime import timedelta

    from kaalwatch.commands.workspace import daemon_line
    from kaalwatch.model import iso, utcnow

    now = utcnow()
    fresh = {"pid": 42, "running": True, "updated_at": iso(now), "watcher_alive": True, "queue_length": 2,
             "last_sync_result": "2 new, 0 updated"}
    assert daemon_line(fresh, now) == "daemon: pid 42, watcher alive, queue 2, last sync: 2 new, 0 updated"
    assert daemon_line({}, now).startswith("daemon: not running")
    assert daemon_line({**fresh, "running": False}, now).startswith("daemon: not running (last seen")
    stale = {**fresh, "updated_at": iso(now - timedelta(minutes=5))}
    assert daemon_line(stale, now).startswith("daemon: not running")  # killed without a chance to say so
    assert "watcher NOT running" in daemon_line({**fresh, "watcher_alive": False}, now)
