"""The viewer's tile cache is cut from version copies: purging an order's files takes all of its tiles."""

from __future__ import annotations

from kaalwatch import retention
from kaalwatch.imaging import tiles
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app.views.tiles import cache_dir
from tests.retention.conftest import later


def test_purge_takes_every_viewer_tile_of_the_order(ws: Workspace, settings: Settings, lived) -> None:  # type: ignore[no-untyped-def]
    order = lived()
    job = order.jobs[0]
    for version in job.versions:
        tiles.build(ws.tool_path(version.copy), cache_dir(ws, order.receipt_id, job.job_id, version),
                    tiles.plan(80, 60), 0)
    area = ws.tiles_dir / str(order.receipt_id)
    made = list(area.rglob("*.jpg"))
    assert len(made) == 3

    dry = retention.purge(ws, settings, now=later(settings.retention.files_days + 1), dry_run=True)
    assert any(line.startswith("3 viewer tile(s)") for line in dry.orders[0].removed)
    assert all(p.exists() for p in made)

    report = retention.purge(ws, settings, now=later(settings.retention.files_days + 1))
    assert not report.errors and not any(p.exists() for p in made)
    assert not area.exists() or not any(area.rglob("*"))
