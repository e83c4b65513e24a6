"""Deliverables from the approved version, within Etsy's limits, and knowing for certain they went out.

Etsy's API cannot attach a file to an order: the artist uploads the files on Etsy's order page. This
package makes that one careful minute:

* :func:`prepare` builds every approved job's promised files from its approved version's immutable copy
  into the order's ``deliver/`` folder, checks Etsy's limits across the whole order, and moves the jobs to
  ``ready_to_deliver`` — or reports which promise cannot be met, and then marks nothing ready;
* :func:`confirm_uploaded` is "I have uploaded these": the next sync confirms from Etsy, or the artist
  confirms by hand (recorded as such);
* :func:`ship_confirmed_orders` optionally tells Etsy the order shipped, once, after delivery;
* :func:`panel` is what the review page and ``kaalwatch deliver`` show about the ``deliver/`` folder.

Logs name receipt and job ids only; file names here are built from the listing title, never the buyer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from kaalwatch import lifecycle, private
from kaalwatch.atomic import atomic_write_bytes, is_temp_name
from kaalwatch.delivery.build import Encoded, encode, load_source, shape
from kaalwatch.delivery.limits import BYTES_PER_MB, Check, count_check, deliverable_name, file_checks
from kaalwatch.errors import AuthError, DeliveryError, EtsyError, EtsyForbiddenError, EtsyNotFoundError
from kaalwatch.model import Deliverable, Job, JobState, Order, iso, utcnow
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import DELIVER, Workspace
from kaalwatch.workflows import by_name

__all__ = [
    "BuiltFile",
    "DeliveryReport",
    "Panel",
    "PanelFile",
    "confirm_uploaded",
    "deliver_dir",
    "drop_stale",
    "etsy_order_url",
    "panel",
    "prepare",
    "remove_stale",
    "ship_confirmed_orders",
]

log = logging.getLogger(__name__)

ACTOR = "delivery"
_BUILDABLE = (JobState.APPROVED, JobState.READY_TO_DELIVER)
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# After this many attempts that failed for a reason other than a refusal, the shipment is given up on.
SHIPMENT_ATTEMPTS = 3


@dataclass
class BuiltFile:
    """One file written (or that would have been) into ``deliver/``."""

    job_id: str
    name: str
    format: str
    size: int
    width: int
    height: int
    from_version: int
    promise: str  # what the workflow promised, in words ("PNG", "PDF 'print 8x10' 4:5 at 300 DPI")
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
    count: Check | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise DeliveryError(f"order {self.receipt_id}: {self.problems[0]}{more}",
                                hint="fix the workflow or the artwork, then run `kaalwatch deliver` again")


def deliver_dir(ws: Workspace, receipt_id: int) -> Path:
    """The one folder the artist uploads from: Etsy completes an order with all its files at once."""
    return ws.folder_of(receipt_id) / DELIVER


def describe(promise: Promise) -> str:
    words = [promise.format.upper()]
    if promise.suffix:
        words.append(f"'{promise.suffix}'")
    if promise.aspect:
        words.append(promise.aspect)
    if promise.long_edge:
        words.append(f"{promise.long_edge} px")
    if promise.format == "pdf" or promise.format == "tiff":
        words.append(f"at {promise.dpi} DPI")
    return " ".join(words)


def _promises(settings: Settings, job: Job) -> tuple[Promise, ...]:
    return by_name(settings.workflows, settings.default_workflow, job.workflow).deliverables


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _visible_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and not is_temp_name(p.name))


# --------------------------------------------------------------------------------------------------
# Building


@dataclass
class _Planned:
    job_id: str
    version: int
    promise: Promise
    encoded: Encoded
    name: str = ""
    notes: list[str] = field(default_factory=list)


def _build_job(ws: Workspace, settings: Settings, order: Order, job: Job) -> tuple[list[_Planned], list[str]]:
    """Encode every promise of one job from its approved version (no file written yet)."""
    number = job.approved_version
    version = job.version(number) if number is not None else None
    if version is None or not version.copy:
        return [], [f"job {job.job_id} has no approved version to build from"]
    try:
        source = load_source(ws.tool_path(version.copy), settings)
    except DeliveryError as exc:
        return [], [f"job {job.job_id} version {number}: {exc}"]
    planned: list[_Planned] = []
    problems: list[str] = []
    for promise in _promises(settings, job):
        image, notes = shape(source, promise)
        try:
            encoded = encode(image, promise, source.icc, settings, describe(promise))
        except DeliveryError as exc:
            problems.append(f"job {job.job_id}: {exc}")
            continue
        planned.append(_Planned(job.job_id, number, promise, encoded, notes=source.notes + notes))
    return planned, problems


def _name_files(order: Order, planned: list[_Planned], settings: Settings) -> None:
    taken: set[str] = set()
    several = len(order.jobs) > 1
    for item in planned:
        job = order.job(item.job_id)
        labels = [f"item {order.jobs.index(job) + 1}"] if several else []
        labels.append(item.promise.suffix)
        item.name = deliverable_name(order.receipt_id, job.title, labels, item.encoded.extension,
                                     max_length=settings.delivery.max_name_length, taken=taken)
        taken.add(item.name)


def prepare(ws: Workspace, settings: Settings, receipt_id: int, *, actor: str = "cli") -> DeliveryReport:
    """Build the deliverables of every approved job of the order and move those jobs to ready_to_deliver.

    Pixels are encoded outside the order's lock (a large artwork takes seconds); the files are written and
    the jobs marked ready under the lock, only if no approval changed meanwhile. Any promise that cannot be
    met leaves the whole order unready (Etsy completes an order with all its files at once), with the
    reason recorded on the job and returned in ``report.problems``.
    """
    receipt_id = int(receipt_id)
    snapshot = ws.load(receipt_id)
    folder = deliver_dir(ws, receipt_id)
    report = DeliveryReport(receipt_id=receipt_id, folder=folder)
    live = [job for job in snapshot.jobs if job.state not in (JobState.CANCELLED, JobState.DELIVERED)]
    targets = [job for job in live if job.state in _BUILDABLE and job.approved_version is not None]
    report.waiting = {job.job_id: job.state.value for job in live if job not in targets}
    if not targets:
        states = ", ".join(f"job {j.job_id} is {j.state.label}" for j in snapshot.jobs) or "it has no jobs"
        raise DeliveryError(f"order {receipt_id} has no approved job to deliver ({states})",
                            hint="approve a version on the review page first")

    # The count limit is the order's, across its jobs: every live job's promises will be uploaded together,
    # and so would anything else lying in deliver/.
    known = {d.name for job in snapshot.jobs for d in job.deliverables}
    strangers = [p.name for p in _visible_files(folder) if p.name not in known]
    promised = {job.job_id: len(_promises(settings, job)) for job in live}
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

    planned: list[_Planned] = []
    if report.ok:
        for job in targets:
            built, problems = _build_job(ws, settings, snapshot, job)
            planned.extend(built)
            report.problems.extend(problems)
        _name_files(snapshot, planned, settings)

    with ws.edit(receipt_id) as order:
        for job in targets:
            current = order.job(job.job_id)
            if current.state not in _BUILDABLE or current.approved_version != job.approved_version:
                report.problems.append(f"job {job.job_id}'s approval changed while its files were built; "
                                       f"run deliver again")
        report.removed = drop_stale(order, folder, actor)
        if report.problems:
            for job in targets:
                lifecycle.set_error(order, job.job_id, f"cannot deliver: {report.problems[0]}", ACTOR,
                                    source="delivery")
            log.warning("order %s: deliverables not ready: %d problem(s)", receipt_id, len(report.problems))
            return report
        report.removed += _write_files(order, folder, planned, targets)
        by_job: dict[str, list[Deliverable]] = {}
        for item in planned:
            size = len(item.encoded.data)
            by_job.setdefault(item.job_id, []).append(Deliverable(
                name=item.name, format=item.encoded.format, size=size, sha256=_sha256(item.encoded.data),
                from_version=item.version, width=item.encoded.width, height=item.encoded.height,
                note="; ".join(item.encoded.steps + item.notes) or None,
            ))
            report.files.append(BuiltFile(
                job_id=item.job_id, name=item.name, format=item.encoded.format, size=size,
                width=item.encoded.width, height=item.encoded.height, from_version=item.version,
                promise=describe(item.promise), steps=list(item.encoded.steps), notes=list(item.notes),
                checks=file_checks(item.name, size, settings.delivery),
            ))
        for job in targets:
            deliverables = by_job.get(job.job_id, [])
            fitted = [f"{d.name}: {d.note}" for d in deliverables if d.note]
            if fitted:
                lifecycle.record(order, ACTOR, "deliverables_fitted", job.job_id, steps=fitted)
            lifecycle.mark_ready(order, job.job_id, deliverables, actor=actor)
            lifecycle.set_error(order, job.job_id, None, ACTOR, source="delivery")
            report.ready.append(job.job_id)
    log.info("order %s: %d deliverable(s) ready for job(s) %s", receipt_id, len(report.files),
             ", ".join(report.ready))
    return report


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


def remove_stale(ws: Workspace, receipt_id: int, *, actor: str = ACTOR) -> list[str]:
    """Remove deliverables of jobs that stopped being ready; call after an approval changes or is cleared."""
    folder = deliver_dir(ws, receipt_id)
    with ws.edit(receipt_id) as order:
        removed = drop_stale(order, folder, actor)
    if removed:
        log.info("order %s: removed %d stale deliverable(s)", receipt_id, len(removed))
    return removed


# --------------------------------------------------------------------------------------------------
# After the upload


def confirm_uploaded(ws: Workspace, receipt_id: int, *, manual: bool, actor: str = "review") -> list[str]:
    """"I have uploaded these": with ``manual`` the ready jobs are delivered now (confirmed by hand);
    otherwise the claim is recorded and the next sync delivers them when Etsy shows the receipt completed.

    Returns the ids of the jobs the claim covers.
    """
    receipt_id = int(receipt_id)
    with ws.edit(receipt_id) as order:
        ready = [job.job_id for job in order.jobs if job.state is JobState.READY_TO_DELIVER]
        if not ready:
            raise DeliveryError(f"order {receipt_id} has no job ready to deliver",
                                hint=f"prepare its files first: kaalwatch deliver {receipt_id}")
        if manual:
            for job_id in ready:
                lifecycle.mark_delivered(order, job_id, confirmed_by="manual", actor=actor)
        else:
            lifecycle.record(order, actor, "upload_claimed", None, jobs=ready)
            if order.etsy_completed:
                # Etsy already showed the receipt completed: no later sync will report it again.
                lifecycle.etsy_completed(order, actor=actor)
    log.info("order %s: upload %s for job(s) %s", receipt_id, "confirmed by hand" if manual else "claimed",
             ", ".join(ready))
    return ready


def etsy_order_url(settings: Settings, receipt_id: int) -> str:
    """The page where the artist completes the order and uploads its files."""
    base = settings.etsy.base_url.rstrip("/")
    host = (urlsplit(base).hostname or "").lower()
    if host in _LOCAL_HOSTS or host.startswith("127."):
        return f"{base}/your/orders/sold?order_id={int(receipt_id)}"
    return f"https://www.etsy.com/your/orders/sold?order_id={int(receipt_id)}"


class ShipmentClient(Protocol):
    def create_receipt_shipment(self, shop_id: int, receipt_id: int, note_to_buyer: str) -> Any: ...


def _shop_id(client: Any) -> int:
    shop_id = getattr(client, "shop_id", None)
    if shop_id is None and hasattr(client, "get_me"):
        me = client.get_me()
        shop_id = me.get("shop_id") if isinstance(me, dict) else getattr(me, "shop_id", None)
    if not shop_id:
        raise DeliveryError("the connected Etsy account has no shop", hint="run `kaalwatch auth` as the shop owner")
    return int(shop_id)


def _delivered(order: Order) -> bool:
    return order.finished_at is not None and any(job.state is JobState.DELIVERED for job in order.jobs)


def ship_confirmed_orders(ws: Workspace, settings: Settings, client: ShipmentClient,
                          *, shop_id: int | None = None) -> list[str]:
    """When ``delivery.create_shipment`` is on, call createReceiptShipment once per delivered order.

    A refusal (Etsy says no, or the key may not call it) is recorded on the order and never retried; other
    failures are retried on later passes up to ``SHIPMENT_ATTEMPTS`` times. Returns one line per order acted
    on (receipt id and outcome).
    """
    if not settings.delivery.create_shipment:
        return []
    outcomes: list[str] = []
    for _folder, order in ws.iter_orders():
        if not isinstance(order, Order) or not _delivered(order) or order.anonymised_at:
            continue
        record = order.extra.get("shipment") or {}
        if record.get("status") in ("created", "refused", "gave_up"):
            continue
        if shop_id is None:
            shop_id = _shop_id(client)
        outcome = _ship_one(ws, settings, client, shop_id, order.receipt_id)
        if outcome:
            outcomes.append(outcome)
    return outcomes


def _ship_one(ws: Workspace, settings: Settings, client: ShipmentClient, shop_id: int, receipt_id: int) -> str:
    status, error = "created", None
    try:
        client.create_receipt_shipment(shop_id, receipt_id, settings.delivery.shipment_note)
    except (AuthError, EtsyForbiddenError, EtsyNotFoundError) as exc:
        status, error = "refused", str(exc)  # this key, shop or receipt may not do it: asking again won't help
    except EtsyError as exc:
        status, error = "failed", str(exc)
    with ws.edit(receipt_id) as order:
        record = dict(order.extra.get("shipment") or {})
        attempts = int(record.get("attempts", 0)) + 1
        if status == "failed" and attempts >= SHIPMENT_ATTEMPTS:
            status = "gave_up"
        order.extra["shipment"] = {"status": status, "attempts": attempts, "at": iso(utcnow()),
                                   **({"error": error} if error else {})}
        lifecycle.record(order, ACTOR, f"shipment_{status}", None, attempts=attempts,
                         **({"error": error} if error else {}))
        if status in ("refused", "gave_up"):
            lifecycle.set_error(order, None, f"Etsy did not mark this order shipped ({error}); the files were "
                                "delivered; mark it on Etsy by hand if needed", ACTOR, source="shipment")
        elif status == "created":
            lifecycle.set_error(order, None, None, ACTOR, source="shipment")
    if status == "created":
        log.info("order %s: marked shipped on Etsy", receipt_id)
    else:
        log.warning("order %s: createReceiptShipment %s: %s", receipt_id, status, error)
    return f"{receipt_id}: {status}"


# --------------------------------------------------------------------------------------------------
# What the page and the command show


@dataclass
class PanelFile:
    job_id: str
    name: str
    size: int
    present: bool
    intact: bool  # the file on disk is the one built (same size); a hand-edited file is shown as such
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return self.present and self.intact and all(check.ok for check in self.checks)

    @property
    def megabytes(self) -> str:
        return f"{self.size / BYTES_PER_MB:.1f} MB"


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

    @property
    def ok(self) -> bool:
        return bool(self.files) and self.count.ok and all(f.ok for f in self.files) and not self.strangers


def panel(ws: Workspace, settings: Settings, order: Order, folder: Path | None = None) -> Panel:
    """The delivery panel's facts for ``order``: files of ready jobs on disk, each against each limit."""
    deliver = (folder or ws.folder_of(order.receipt_id)) / DELIVER
    files: list[PanelFile] = []
    built: set[str] = set()
    ready_jobs = []
    for job in order.jobs:
        if job.state is not JobState.READY_TO_DELIVER:
            continue
        ready_jobs.append(job.job_id)
        for deliverable in job.deliverables:
            path = deliver / deliverable.name
            built.add(deliverable.name)
            size = deliverable.size
            present = intact = False
            with contextlib.suppress(OSError):
                size = os.stat(path).st_size
                present = True
                intact = size == deliverable.size
            files.append(PanelFile(job.job_id, deliverable.name, size, present, intact,
                                   file_checks(deliverable.name, size, settings.delivery)))
    # What a delivered job built was uploaded already: it is the record of the delivery, not a stranger.
    delivered = {d.name for job in order.jobs if job.state is JobState.DELIVERED for d in job.deliverables}
    strangers = [p.name for p in _visible_files(deliver) if p.name not in built | delivered]
    claimed = any(event.event == "upload_claimed" for event in order.history[-20:])
    return Panel(order.receipt_id, deliver, etsy_order_url(settings, order.receipt_id), files,
                 count_check(len(files) + len(strangers), settings.delivery), strangers, ready_jobs, claimed)
