"""``kaalwatch deliver`` and ``kaalwatch purge`` from the command line, in process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kaalwatch import lifecycle, logs
from kaalwatch.cli import main
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import deliver_files, noise


@pytest.fixture(autouse=True)
def _drop_log_handlers() -> Iterator[None]:
    """``main`` sets up logging into the test's workspace; take those handlers away afterwards."""
    yield
    logs.remove_handlers()


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'workspace: "{settings.workspace}"\nworkflows: []\n')
    return path


def test_deliver_builds_prints_and_confirms(config: Path, ws: Workspace, order_with_art: Callable[..., Order],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    order = order_with_art(noise(300, 200))
    rid = order.receipt_id
    # 300 px against the web JPEG's promised 2048 px: shown, and nothing built without --anyway.
    assert main(["--config", str(config), "deliver", str(rid)]) != 0
    captured = capsys.readouterr()
    assert "✗ 300 px of the promised 2048 px" in captured.out and "--anyway" in captured.err
    assert deliver_files(ws, rid) == []
    assert main(["--config", str(config), "deliver", str(rid), "--anyway"]) == 0
    out = capsys.readouterr().out
    names = [p.name for p in deliver_files(ws, rid)]
    assert len(names) == 2 and all(name in out for name in names)
    assert " KB " in out and "0.0 MB" not in out  # small files in KB
    assert any(e.event == "delivered_anyway" for e in ws.load(rid).history)
    assert "files per order: 2 of 5 files per order (ok)" in out
    assert f"https://www.etsy.com/your/orders/sold?order_id={rid}" in out
    assert ws.load(rid).jobs[0].state is JobState.READY_TO_DELIVER

    assert main(["--config", str(config), "deliver", str(rid), "--confirm-manual"]) == 0
    assert ws.load(rid).jobs[0].delivery_confirmed_by == "manual"


def test_deliver_without_approval_is_one_line_error(config: Path, ws: Workspace,
                                                    order_with_art: Callable[..., Order],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    order = order_with_art(noise(32, 32), approved=False)
    assert main(["--config", str(config), "deliver", str(order.receipt_id)]) == 10
    err = capsys.readouterr().err
    assert err.startswith(f"kaalwatch: error: order {order.receipt_id} has no approved job") and err.count("\n") == 1


def test_purge_dry_run_lists_and_changes_nothing(config: Path, ws: Workspace, make_order: Callable[..., Order],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    order = make_order()
    ws.add_order(order)
    (ws.folder_of(order.receipt_id) / "references" / "photo.jpg").write_bytes(b"x" * 100)
    with ws.edit(order.receipt_id) as current:
        lifecycle.cancel(current, "refunded", at=current.ordered_at - timedelta(days=400))
    assert main(["--config", str(config), "purge", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"order {order.receipt_id}" in out and "would delete" in out and "retention would remove" in out
    assert (ws.folder_of(order.receipt_id) / "references" / "photo.jpg").exists()
    assert main(["--config", str(config), "purge"]) == 0
    assert "did delete" in capsys.readouterr().out
    assert ws.load(order.receipt_id).anonymised_at is not None


def test_deliver_on_a_delivered_order_says_where_and_when(config: Path, ws: Workspace,
                                                          order_with_art: Callable[..., Order],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    order = order_with_art(noise(300, 200))
    rid = order.receipt_id
    assert main(["--config", str(config), "deliver", str(rid), "--anyway"]) == 0
    with ws.edit(rid) as current:
        lifecycle.mark_delivered(current, current.jobs[0].job_id, confirmed_by="etsy")
    capsys.readouterr()
    assert main(["--config", str(config), "deliver", str(rid)]) == 10
    err = capsys.readouterr().err
    today = ws.load(rid).jobs[0].delivered_at.date().isoformat()
    assert f"order {rid} is already delivered (Etsy confirmed on {today})" in err
    assert f"its 2 file(s) are in {ws.folder_of(rid) / 'deliver'}" in err
    assert "approve" not in err and err.count("\n") == 1
