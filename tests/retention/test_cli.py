"""``kaalwatch keep``, ``purge`` and ``status`` from the command line, in process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from kaalwatch import lifecycle, logs
from kaalwatch.cli import main
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace


@pytest.fixture(autouse=True)
def _drop_log_handlers() -> Iterator[None]:
    yield
    logs.remove_handlers()


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f'workspace: "{settings.workspace}"\nworkflows: []\n')
    return path


def test_keep_then_purge_then_status(config: Path, ws: Workspace, make_order: Callable[..., Order],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    order = make_order(buyer="Octavia Fenwick")
    ws.add_order(order)
    rid = order.receipt_id
    with ws.edit(rid) as current:
        lifecycle.cancel(current, "refunded", at=current.ordered_at - timedelta(days=400))

    assert main(["--config", str(config), "keep", str(rid), "--days", "30", "--reason", " "]) == 5
    assert "a reason is recorded" in capsys.readouterr().err
    assert main(["--config", str(config), "keep", str(rid), "--days", "30", "--reason", "dispute"]) == 0
    assert f"order {rid}: kept until " in capsys.readouterr().out
    assert main(["--config", str(config), "purge"]) == 0
    out = capsys.readouterr().out
    assert f"order {rid}: left alone (kept until " in out and "anonymised 0" in out
    assert ws.load(rid).buyer_name == "Octavia Fenwick"

    assert main(["--config", str(config), "status"]) == 0
    assert "retention: has not run yet" in capsys.readouterr().out
