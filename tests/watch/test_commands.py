"""`kaalwatch rescan` and `kaalwatch previews` through the real CLI entry point."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kaalwatch.cli import main
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.watch.helpers import png


@pytest.fixture
def config(tmp_path: Path, settings: Settings) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"workspace": str(settings.workspace), "watcher": {"quiet_seconds": 0.3},
                                    "preview": {"long_edge": 256, "thumb_edge": 64}}))
    return path


def test_rescan_and_previews_commands(ws: Workspace, order_at: Callable, config: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    order, folder = order_at()
    art = folder / "portrait.png"
    art.write_bytes(png(1))
    t = art.stat().st_mtime_ns - 60 * 10**9
    os.utime(art, ns=(t, t))
    assert main(["--config", str(config), "rescan", str(order.receipt_id)]) == 0
    assert "1 new versions" in capsys.readouterr().out
    assert len(ws.load(order.receipt_id).jobs[0].versions) == 1
    assert main(["--config", str(config), "rescan"]) == 0
    assert "0 new versions" in capsys.readouterr().out
    assert main(["--config", str(config), "previews", "--rebuild"]) == 0
    assert "1 previews rendered" in capsys.readouterr().out
    assert main(["--config", str(config), "rescan", "999999"]) == 6  # unknown order: NotFoundError's exit code
