"""What the review page's delivery panel and ``kaalwatch deliver`` show: the plan before building (each promised
file's frame on the artwork, its final pixels, the promises it would miss) and the files after building."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from kaalwatch.delivery.after_upload import etsy_order_url
from kaalwatch.delivery.folder import deliver_dir, visible_files
from kaalwatch.delivery.limits import Check, count_check, file_checks, human_size
from kaalwatch.delivery.promises import PlannedFile, plan_job, quantity_check
from kaalwatch.model import AddOn, JobState, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

# States whose approved version can be planned and built.
_PLANNABLE = (JobState.APPROVED, JobState.READY_TO_DELIVER)
_FINISHED = (JobState.DELIVERED, JobState.CANCELLED)


@dataclass
class PanelFile:
    job_id: str
    name: str
    size: int
    present: bool
    intact: bool  # the file on disk is the one built (same size); a hand-edited file is shown as such
    checks: list[Check]
    index: int = 0  # position among the job's deliverables (the thumbnail's address)
    thumb: bool = False
    width: int | None = None
    height: int | None = None
    warnings: list[str] = field(default_factory=list)  # promises missed, delivered anyway

    @property
    def ok(self) -> bool:
        return self.present and self.intact and all(check.ok for check in self.checks)

    @property
    def megabytes(self) -> str:
        """The size as people read it ("840 KB", "4.3 MB"); the name is kept for the templates."""
        return human_size(self.size)


@dataclass
class Panel:
    receipt_id: int
    folder: Path
    url: str
    files: list[PanelFile]
    count: Check
    strangers: list[str]  # files in deliver/ that no ready job built (do not upload them)
    ready_jobs: list[str]
    claimed: bool  # "I have uploaded these" was pressed; waiting for Etsy
    plans: list[PlannedFile] = field(default_factory=list)  # approved jobs' files, before they are built
    job_checks: list[Check] = field(default_factory=list)  # quantity, colour
    addons: list[AddOn] = field(default_factory=list)
    urgent: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.files) and self.count.ok and all(f.ok for f in self.files) and not self.strangers

    @property
    def warnings(self) -> list[str]:
        out = [check.detail for check in self.job_checks if not check.ok]
        out += [f"{plan.describe}: {check.detail}" for plan in self.plans for check in plan.warnings]
        return out


def _plans(ws: Workspace, settings: Settings, order: Order) -> tuple[list[PlannedFile], list[Check]]:
    plans: list[PlannedFile] = []
    checks: list[Check] = []
    for job in order.jobs:
        plan = plan_job(ws, settings, job) if job.state in _PLANNABLE else None
        if plan is None:
            # "2 portraits ordered" is shown from the start, not only once there is something to build.
            quantity = quantity_check(settings, job) if job.state not in _FINISHED else None
            checks.extend([quantity] if quantity else [])
            continue
        checks.extend(plan.job_checks)
        plans.extend(plan.files)
    return plans, checks


def panel(ws: Workspace, settings: Settings, order: Order) -> Panel:
    """The delivery panel's facts for ``order``: the plan of approved jobs, and the files of ready jobs on disk."""
    deliver = deliver_dir(ws, order.receipt_id)
    files: list[PanelFile] = []
    built: set[str] = set()
    ready_jobs = []
    for job in order.jobs:
        if job.state is not JobState.READY_TO_DELIVER:
            continue
        ready_jobs.append(job.job_id)
        for index, deliverable in enumerate(job.deliverables):
            path = deliver / deliverable.name
            built.add(deliverable.name)
            size = deliverable.size
            present = intact = False
            with contextlib.suppress(OSError):
                size = os.stat(path).st_size
                present = True
                intact = size == deliverable.size
            files.append(PanelFile(job.job_id, deliverable.name, size, present, intact,
                                   file_checks(deliverable.name, size, settings.delivery), index,
                                   bool(deliverable.thumb), deliverable.width, deliverable.height,
                                   list(deliverable.warnings)))
    # What a delivered job built was uploaded already: it is the record of the delivery, not a stranger.
    delivered = {d.name for job in order.jobs if job.state is JobState.DELIVERED for d in job.deliverables}
    strangers = [p.name for p in visible_files(deliver) if p.name not in built | delivered]
    plans, job_checks = _plans(ws, settings, order)
    return Panel(order.receipt_id, deliver, etsy_order_url(settings, order.receipt_id), files,
                 count_check(len(files) + len(strangers), settings.delivery), strangers, ready_jobs,
                 order.upload_claimed_at is not None, plans, job_checks, list(order.addons), order.urgent)

