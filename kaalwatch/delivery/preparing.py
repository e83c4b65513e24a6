"""Build every approved job's promised files into ``deliver/`` and mark those jobs ready to deliver.

Pixels are encoded outside the order's lock (a large artwork takes seconds); the files are written and the jobs
marked ready under the lock, only if no approval changed meanwhile. Two kinds of trouble:

* a **problem** (Etsy's limits cannot be met, the artwork cannot be read) leaves the whole order unready —
  Etsy completes an order with all its files at once — with the reason on the job;
* a **warning** (a promise the artwork misses: pixels, DPI, a deep crop, a colour profile, a quantity) builds
  nothing unless the owner says "deliver anyway", which is recorded in the history and on each file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from kaalwatch import lifecycle, private
from kaalwatch.atomic import atomic_write_bytes
from kaalwatch.delivery.build import Encoded, encode, halve_for, image_bytes, load_source, shape
from kaalwatch.delivery.folder import deliver_dir, visible_files
from kaalwatch.delivery.limits import Check, count_check, file_checks
from kaalwatch.delivery.names import fill, name_fields
from kaalwatch.delivery.promises import PlannedFile, plan_files, plan_job, promises, workflow_of
from kaalwatch.errors import DeliveryError
from kaalwatch.model import Deliverable, Job, JobState, Order
from kaalwatch.naming import safe_component
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

log = logging.getLogger("kaalwatch.delivery")

ACTOR = "delivery"
_BUILDABLE = (JobState.APPROVED, JobState.READY_TO_DELIVER)
BUILD_THREADS = min(3, os.cpu_count() or 1)


@dataclass
class BuiltFile:
    """One file written into ``deliver/``."""

    job_id: str
    name: str
    format: str
    size: int
    width: int
    height: int
    from_version: int
    promise: str  # what the workflow promised, in words ("PNG", "PDF 'print 8x10' 8x10 in at 300 DPI")
    steps: list[str] = field(default_factory=list)  # what fitting did
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


@dataclass
class DeliveryReport:
    receipt_id: int
    folder: Path  # the deliver/ folder to upload from
    files: list[BuiltFile] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)  # job ids now ready to deliver
    waiting: dict[str, str] = field(default_factory=dict)  # job id -> state, jobs not approved yet
    removed: list[str] = field(default_factory=list)  # stale files taken out of deliver/
    problems: list[str] = field(default_factory=list)  # promises that cannot be met (nothing marked ready)
    warnings: list[str] = field(default_factory=list)  # promises missed; built only with anyway=True
    held: bool = False  # warnings stopped the build: nothing was written
    count: Check | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and not self.held

    def raise_for_problems(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise DeliveryError(f"order {self.receipt_id}: {self.problems[0]}{more}",
                                hint="fix the workflow or the artwork, then run `kaalwatch deliver` again")


@dataclass
class _Planned:
    file: PlannedFile
    encoded: Encoded
    thumb: str
    name: str = ""
    notes: list[str] = field(default_factory=list)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _thumb(ws: Workspace, settings: Settings, receipt_id: int, job_id: str, image: Image.Image) -> str:
    """A thumbnail of the file's own pixels (content-addressed, so a rebuild never shows a stale one)."""
    edge = settings.preview.thumb_edge
    scale = min(1.0, edge / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # An integer area reduction first (fast, and no full-size copy), then a small filtered resample.
    factor = max(1, int(1 / scale / 2))
    reduced = image.reduce(factor) if factor > 1 else image
    small = reduced.resize(size, Image.Resampling.BILINEAR).convert("RGB")
    data = image_bytes(small, "JPEG", quality=settings.preview.jpeg_quality)
    path = ws.previews_dir / str(int(receipt_id)) / safe_component(job_id) / f"deliver-{_sha256(data)[:16]}.jpg"
    if not path.is_file():
        atomic_write_bytes(path, data)  # private, like the previews: it shows the buyer's portrait
    return ws.relative_to_tool(path)


def _build_job(ws: Workspace, settings: Settings, order: Order, job: Job,
               report: DeliveryReport) -> list[_Planned]:
    """Encode every promise of one job from its approved version (nothing written into deliver/ yet)."""
    number = job.approved_version
    version = job.version(number) if number is not None else None
    if version is None or not version.copy:
        report.problems.append(f"job {job.job_id} has no approved version to build from")
        return []
    try:
        source = load_source(ws.tool_path(version.copy), settings)
    except DeliveryError as exc:
        report.problems.append(f"job {job.job_id} version {number}: {exc}")
        return []
    if source.colour_problem and not any(w.startswith(f"job {job.job_id}: the embedded colour profile")
                                         for w in report.warnings):  # the plan may have seen it already
        report.warnings.append(f"job {job.job_id}: {source.colour_problem}")

    def build(item: PlannedFile) -> _Planned | str:
        image, notes = shape(source, item.frame, item.promise)
        try:
            encoded = encode(image, item.promise, source.icc, settings, item.describe, page_dpi=item.frame.dpi)
        except DeliveryError as exc:
            return f"job {job.job_id}: {exc}"
        thumb = _thumb(ws, settings, order.receipt_id, job.job_id, image)
        return _Planned(item, encoded, thumb, notes=source.notes + notes)

    # Resampling and encoding release the GIL: the files of one artwork are built side by side, reading the
    # one decoded source (only the small resampled copies are new memory). Files of the whole artwork as it is
    # encode the source image object itself, whose save() state is not thread-safe: those are built here, one
    # after the other, while the pool builds the others.
    items = plan_files(settings, job, version.number, *source.image.size)
    halve_for(source, [item.frame for item in items])
    whole = [item for item in items if item.frame.whole]
    with ThreadPoolExecutor(max_workers=max(1, min(len(items), BUILD_THREADS))) as pool:
        pending = {id(item): pool.submit(build, item) for item in items if not item.frame.whole}
        done = {id(item): build(item) for item in whole}
        built = [done[id(item)] if id(item) in done else pending[id(item)].result() for item in items]
    report.problems.extend(b for b in built if isinstance(b, str))
    return [b for b in built if isinstance(b, _Planned)]


def _name_files(order: Order, planned: list[_Planned], settings: Settings) -> None:
    taken: set[str] = set()
    several = len(order.jobs) > 1
    for item in planned:
        job = order.job(item.file.job_id)
        fields = name_fields(order.receipt_id, order.buyer_name, job.title,
                             {answer.question: answer.answer for answer in job.answers},
                             item=order.jobs.index(job) + 1 if several else None, variant=item.file.promise.suffix)
        template = item.file.promise.name or workflow_of(settings, job).name_template
        item.name = fill(template, fields, item.encoded.extension, max_length=settings.delivery.max_name_length,
                         taken=taken)
        taken.add(item.name)


def _warnings_before_building(ws: Workspace, settings: Settings, targets: list[Job]) -> list[str]:
    warnings: list[str] = []
    for job in targets:
        plan = plan_job(ws, settings, job)
        if plan is not None:
            warnings.extend(f"job {job.job_id}: {warning}" for warning in plan.warnings)
    return warnings


def prepare(ws: Workspace, settings: Settings, receipt_id: int, *, actor: str = "cli",
            anyway: bool = False) -> DeliveryReport:
    """Build the deliverables of every approved job of the order and move those jobs to ready_to_deliver.

    With warnings (see the module docstring) nothing is built unless ``anyway``; then each warning is recorded.
    """
    receipt_id = int(receipt_id)
    snapshot = ws.load(receipt_id)
    folder = deliver_dir(ws, receipt_id)
    report = DeliveryReport(receipt_id=receipt_id, folder=folder)
    live = [job for job in snapshot.jobs if job.state not in (JobState.CANCELLED, JobState.DELIVERED)]
    targets = [job for job in live if job.state in _BUILDABLE and job.approved_version is not None]
    report.waiting = {job.job_id: job.state.value for job in live if job not in targets}
    # A sync conflict means the approved file may not be the artist's newest: never build from it.
    if refusal := next(filter(None, (lifecycle.conflict_refusal(snapshot, job) for job in live)), None):
        raise DeliveryError(refusal)
    if not targets:
        message, hint = nothing_to_build(ws, snapshot)
        raise DeliveryError(message, hint=hint)

    # The count limit is the order's, across its jobs: every live job's promises will be uploaded together,
    # and so would anything else lying in deliver/.
    known = {d.name for job in snapshot.jobs for d in job.deliverables}
    strangers = [p.name for p in visible_files(folder) if p.name not in known]
    promised = {job.job_id: len(promises(settings, job)) for job in live}
    total = sum(promised.values()) + len(strangers)
    report.count = count_check(total, settings.delivery)
    if not report.count.ok:
        parts = [f"job {job_id}: {n}" for job_id, n in promised.items()]
        if strangers:
            parts.append(f"{len(strangers)} other file(s) already in deliver/")
        report.problems.append(
            f"{total} files to upload ({', '.join(parts)}) but Etsy takes at most {settings.delivery.max_files} "
            f"per order; promise fewer files in the workflow or remove the others from deliver/"
        )
    report.warnings = _warnings_before_building(ws, settings, targets)
    planned: list[_Planned] = []
    if not report.problems and (anyway or not report.warnings):
        for job in targets:
            planned.extend(_build_job(ws, settings, snapshot, job, report))
        _name_files(snapshot, planned, settings)
    # Held on warnings seen before building, or found only by decoding (a profile the header check could not judge).
    if report.warnings and not anyway:
        report.held = True
        return report
    _commit(ws, settings, report, targets, planned, actor)
    return report


def _commit(ws: Workspace, settings: Settings, report: DeliveryReport, targets: list[Job],
            planned: list[_Planned], actor: str) -> None:
    """Under the order's lock: write the files and mark the jobs ready, or record why not."""
    receipt_id, folder = report.receipt_id, report.folder
    with ws.edit(receipt_id) as order:
        for job in targets:
            current = order.job(job.job_id)
            if current.state not in _BUILDABLE or current.approved_version != job.approved_version:
                report.problems.append(f"job {job.job_id}'s approval changed while its files were built; "
                                       f"run deliver again")
        if report.problems:
            for job in targets:
                lifecycle.set_error(order, job.job_id, f"cannot deliver: {report.problems[0]}", ACTOR,
                                    source="delivery")
            log.warning("order %s: deliverables not ready: %d problem(s)", receipt_id, len(report.problems))
            return
        report.removed = _write_files(order, folder, planned, targets)
        by_job: dict[str, list[Deliverable]] = {}
        for item in planned:
            size = len(item.encoded.data)
            warnings = [f"{item.file.describe}: {c.detail}" for c in item.file.warnings]
            by_job.setdefault(item.file.job_id, []).append(Deliverable(
                name=item.name, format=item.encoded.format, size=size, sha256=_sha256(item.encoded.data),
                from_version=item.file.version, width=item.encoded.width, height=item.encoded.height,
                note="; ".join(item.encoded.steps + item.notes) or None, thumb=item.thumb, warnings=warnings,
            ))
            report.files.append(BuiltFile(
                job_id=item.file.job_id, name=item.name, format=item.encoded.format, size=size,
                width=item.encoded.width, height=item.encoded.height, from_version=item.file.version,
                promise=item.file.describe, steps=list(item.encoded.steps), notes=list(item.notes),
                checks=file_checks(item.name, size, settings.delivery) + item.file.frame.checks,
            ))
        for job in targets:
            deliverables = by_job.get(job.job_id, [])
            fitted = [f"{d.name}: {d.note}" for d in deliverables if d.note]
            if fitted:
                lifecycle.record(order, ACTOR, "deliverables_fitted", job.job_id, steps=fitted)
            mine = [w for w in report.warnings if w.startswith(f"job {job.job_id}:")]
            if mine:
                lifecycle.record(order, actor, "delivered_anyway", job.job_id, warnings=mine)
            lifecycle.mark_ready(order, job.job_id, deliverables, actor=actor)
            lifecycle.set_error(order, job.job_id, None, ACTOR, source="delivery")
            report.ready.append(job.job_id)
    log.info("order %s: %d deliverable(s) ready for job(s) %s", receipt_id, len(report.files),
             ", ".join(report.ready))


def _write_files(order: Order, folder: Path, planned: list[_Planned], targets: list[Job]) -> list[str]:
    """Write the new files atomically, then remove what the rebuilt jobs had before and no longer have."""
    private.make_dir(folder)
    new_names = {item.name for item in planned}
    for item in planned:
        atomic_write_bytes(folder / item.name, item.encoded.data)
    removed = []
    for job in targets:
        for old in order.job(job.job_id).deliverables:
            if old.name not in new_names and (folder / old.name).is_file():
                (folder / old.name).unlink()
                removed.append(old.name)
    return removed


def nothing_to_build(ws: Workspace, order: Order) -> tuple[str, str]:
    """(message, hint) for an order with no approved job: what state it is in, and what to do next."""
    delivered = [job for job in order.jobs if job.state is JobState.DELIVERED]
    if delivered and all(job.state in (JobState.DELIVERED, JobState.CANCELLED) for job in order.jobs):
        when = max(job.delivered_at for job in delivered if job.delivered_at) if any(
            job.delivered_at for job in delivered) else None
        by = "Etsy confirmed" if all(job.delivery_confirmed_by == "etsy" for job in delivered) else "confirmed by hand"
        files = [d.name for job in delivered for d in job.deliverables]
        date = f" on {when.date().isoformat()}" if when else ""
        return (f"order {order.receipt_id} is already delivered ({by}{date}); "
                f"its {len(files)} file(s) are in {deliver_dir(ws, order.receipt_id)}",
                "nothing to do; a new save of the artwork would start a new round")
    if order.jobs and all(job.state is JobState.CANCELLED for job in order.jobs):
        return f"order {order.receipt_id} is cancelled", "nothing to deliver"
    states = ", ".join(f"job {j.job_id} is {j.state.label}" for j in order.jobs) or "it has no jobs"
    return (f"order {order.receipt_id} has no approved job to deliver ({states})",
            "send a proof and record the buyer's approval on the review page, then build the files")
