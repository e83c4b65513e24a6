"""An order's ``deliver/`` folder holds only the files of ready jobs: the invariant ``Workspace.edit`` keeps.

After every change to an order (a newer save, another approval, reopen, cancel, undo, a moved crop…) the
store calls :func:`drop_stale`, so a file the buyer did not approve never waits in the folder the owner
uploads from — whoever made the change, without it having to remember. No import of :mod:`kaalwatch.store`
or :mod:`kaalwatch.delivery` here: the store imports this module.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kaalwatch import lifecycle
from kaalwatch.model import JobState, Order

log = logging.getLogger("kaalwatch.delivery")

# On hold keeps its files: reopening returns the job to where it was, ready ones included. What a delivered
# job built is the record of the delivery.
_KEEPS_FILES = frozenset({JobState.READY_TO_DELIVER, JobState.DELIVERED, JobState.ON_HOLD})


def built(order: Order) -> set[str]:
    """The names of every deliverable the order records (to tell what a change took out of ``deliver/``)."""
    return {d.name for job in order.jobs for d in job.deliverables}


def drop_stale(order: Order, folder: Path, actor: str = "delivery") -> list[str]:
    """Take out of ``folder`` (the order's ``deliver/``) the files of jobs that are no longer ready, and forget
    them on the order (recorded); the next ``prepare`` rebuilds from the approved version's copy."""
    removed: list[str] = []
    for job in order.jobs:
        if job.state in _KEEPS_FILES or not job.deliverables:
            continue
        for deliverable in job.deliverables:
            path = folder / deliverable.name
            if path.is_file():
                path.unlink()
                removed.append(deliverable.name)
        lifecycle.clear_deliverables(order, job.job_id, f"job is {job.state.label}", actor=actor)
    if removed:
        log.info("order %s: %d stale deliverable(s) removed", order.receipt_id, len(removed))
    return removed
