"""Watchdog events → stable files → versions; rescans that reconcile folders with manifests; ignore rules.

Public API::

    WatchService(ws, settings, pool=None)   # .start() .stop(timeout) .health() .ensure_alive() .rescan(id)
    rescan_order(ws, settings, receipt_id)  # synchronous, no daemon needed (page button, `kaalwatch rescan`)
    rescan_all(ws, settings)                # the same for every order folder
    rebuild_previews(ws, settings, receipt_id=None, rebuild=False)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kaalwatch.imaging import render_previews
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch.ingest import Ingestor, Outcome
from kaalwatch.watch.reconcile import Reconciler, RescanReport, ingest_when_stable
from kaalwatch.watch.seen import SeenStore
from kaalwatch.watch.service import WatchService


def _run(ws: Workspace, settings: Settings, receipt_id: int | None, *, max_wait: float | None = None,
         progress: Callable[[int], None] | None = None) -> RescanReport:
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    try:
        ingestor = Ingestor(ws, settings, render_previews, seen)
        reconciler = Reconciler(ws, settings, ingestor, seen)
        found: list[tuple[Path, int]] = []
        folders = None if receipt_id is None else [ws.folder_of(receipt_id)]
        report = reconciler.scan(folders, lambda p, m: found.append((p, m)),
                                 ingestor.render_version,
                                 force=receipt_id is not None, progress=progress)
        ingest_when_stable(ingestor, found, settings, report, max_wait=max_wait)
        return report
    finally:
        seen.close()


def rescan_order(ws: Workspace, settings: Settings, receipt_id: int, *, max_wait: float | None = None) -> RescanReport:
    """Scan one order folder now and turn what changed into versions, references and previews."""
    return _run(ws, settings, receipt_id, max_wait=max_wait)


def rescan_all(ws: Workspace, settings: Settings, *, max_wait: float | None = None,
               progress: Callable[[int], None] | None = None) -> RescanReport:
    """Scan every order folder now (unchanged folders cost a few stat calls)."""
    return _run(ws, settings, None, max_wait=max_wait, progress=progress)


def rebuild_previews(ws: Workspace, settings: Settings, receipt_id: int | None = None, *, rebuild: bool = False,
                     progress: Callable[[int], None] | None = None) -> tuple[int, list[str]]:
    """Render previews that are missing or stale (all of them with ``rebuild``); returns (rendered, errors)."""
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    rendered, errors = 0, []
    try:
        ingestor = Ingestor(ws, settings, render_previews, seen)
        folders = [ws.folder_of(receipt_id)] if receipt_id is not None else list(ws.iter_order_folders())
        for folder in folders:
            try:
                order = ws.read_folder(folder)
                for job_id, number in ingestor.stale_previews(order, rebuild=rebuild):
                    if ingestor.render_version(order.receipt_id, job_id, number):
                        rendered += 1
                    else:
                        errors.append(f"order {order.receipt_id} job {job_id} version {number}: preview failed")
            except Exception as exc:
                errors.append(f"{folder.name}: {exc}")
            if progress is not None:
                progress(1)
    finally:
        seen.close()
    return rendered, errors


__all__ = ["Ingestor", "Outcome", "RescanReport", "WatchService", "rebuild_previews", "rescan_all", "rescan_order"]
