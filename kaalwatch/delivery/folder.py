"""The order's ``deliver/`` folder: the one place the artist uploads from, kept free of stale files."""

from __future__ import annotations

import logging
from pathlib import Path

from kaalwatch import lifecycle
from kaalwatch.atomic import is_temp_name
from kaalwatch.model import JobState, Order
from kaalwatch.store import DELIVER, Workspace

log = logging.getLogger("kaalwatch.delivery")


def deliver_dir(ws: Workspace, receipt_id: int) -> Path:
    """The one folder the artist uploads from: Etsy completes an order with all its files at once."""
    return ws.folder_of(receipt_id) / DELIVER


def visible_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not is_temp_name(p.name))


def drop_stale(order: Order, folder: Path, actor: str) -> list[str]:
    """Take out of deliver/ the files of jobs that are no longer ready (a newer save cleared the approval),
    so a stale file cannot be uploaded by mistake. Call it inside ``Workspace.edit`` of ``order``; the
    files are rebuilt from the approved version's immutable copy by the next ``prepare``."""
    removed: list[str] = []
    for job in order.jobs:
        # On hold keeps its files: reopening returns the job to where it was, ready ones included.
        if job.state in (JobState.READY_TO_DELIVER, JobState.DELIVERED, JobState.ON_HOLD) or not job.deliverables:
            continue
        for deliverable in job.deliverables:
            path = folder / deliverable.name
            if path.is_file():
                path.unlink()
                removed.append(deliverable.name)
        lifecycle.clear_deliverables(order, job.job_id, f"job is {job.state.label}", actor=actor)
    return removed


def remove_stale(ws: Workspace, receipt_id: int, *, actor: str = "delivery") -> list[str]:
    """Remove deliverables of jobs that stopped being ready; call after an approval changes or is cleared."""
    folder = deliver_dir(ws, receipt_id)
    with ws.edit(receipt_id) as order:
        removed = drop_stale(order, folder, actor)
    if removed:
        log.info("order %s: removed %d stale deliverable(s)", receipt_id, len(removed))
    return removed
