"""What may happen to an order: every change of a job's state, checked and recorded in history.

Plain functions over :class:`~kaalwatch.model.Order` objects, no I/O. Callers (sync, watcher, review
page, delivery, retention, CLI) never set ``job.state`` themselves: they call one of these inside
``Workspace.edit`` (see :mod:`kaalwatch.store`), which writes the result atomically under the order's
lock. An illegal move raises :class:`~kaalwatch.errors.TransitionError` and nothing is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kaalwatch.errors import NotFoundError, TransitionError
from kaalwatch.model import (
    AddOn,
    Deliverable,
    Event,
    Job,
    JobState,
    Note,
    Order,
    Proof,
    Reference,
    Version,
    utcnow,
)

S = JobState
DOWNLOAD_ERROR_PREFIX = "download: "  # a job error with this prefix is the download queue's to clear

# The legal moves of one job. ON_HOLD returns to where it came from (``held_from``) via reopen.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.AWAITING_REFERENCES: frozenset({S.NEW, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.NEW: frozenset({S.AWAITING_REFERENCES, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.PROOF_SENT, S.APPROVED, S.ON_HOLD, S.CANCELLED}),
    S.PROOF_SENT: frozenset({S.CHANGES_REQUESTED, S.APPROVED, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.CHANGES_REQUESTED: frozenset({S.IN_PROGRESS, S.PROOF_SENT, S.APPROVED, S.ON_HOLD, S.CANCELLED}),
    S.APPROVED: frozenset({S.READY_TO_DELIVER, S.IN_PROGRESS, S.PROOF_SENT, S.ON_HOLD, S.CANCELLED, S.DELIVERED}),
    S.READY_TO_DELIVER: frozenset({S.DELIVERED, S.APPROVED, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.DELIVERED: frozenset({S.IN_PROGRESS, S.CANCELLED}),
    S.ON_HOLD: frozenset({s for s in JobState if s is not S.ON_HOLD}),
    S.CANCELLED: frozenset({S.NEW, S.IN_PROGRESS}),
}


def can_move(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]


def record(order: Order, actor: str, event: str, job_id: str | None = None, *, at: datetime | None = None,
           **details: Any) -> Event:
    """Append one history event (the only way history grows)."""
    entry = Event(at=at or utcnow(), actor=actor, event=event, job_id=job_id, details=details)
    order.history.append(entry)
    return entry


def _move(order: Order, job: Job, target: JobState, actor: str, event: str, **details: Any) -> None:
    if job.state is target:
        return
    if not can_move(job.state, target):
        raise TransitionError(
            f"job {job.job_id} of order {order.receipt_id} is {job.state.label}; it cannot become {target.label}"
        )
    before = job.state
    job.state = target
    record(order, actor, event, job.job_id, **{"from": before.value, "to": target.value, **details})


def _version(order: Order, job: Job, number: int) -> Version:
    version = job.version(number)
    if version is None:
        raise NotFoundError(f"order {order.receipt_id} job {job.job_id} has no version {number}")
    return version


# --------------------------------------------------------------------------------------------------
# Work on the artwork


def add_version(order: Order, job_id: str, version: Version, actor: str = "watcher") -> Version:
    """Record a new save. It moves a fresh job to in progress and clears an approval it supersedes."""
    job = order.job(job_id)
    if any(v.sha256 == version.sha256 for v in job.versions):
        raise TransitionError(f"order {order.receipt_id} job {job.job_id} already has this file as a version")
    expected = (job.versions[-1].number + 1) if job.versions else 1
    if version.number != expected:
        raise TransitionError(f"version number {version.number} given, {expected} expected")
    job.versions.append(version)
    record(order, actor, "version_added", job.job_id, version=version.number, source=version.source_name,
           sha256=version.sha256, size=version.size, conflict=version.conflict)
    if job.state in (S.NEW, S.AWAITING_REFERENCES, S.CHANGES_REQUESTED):
        _move(order, job, S.IN_PROGRESS, actor, "work_started", version=version.number)
    elif job.state in (S.APPROVED, S.READY_TO_DELIVER):
        cleared = job.approved_version
        job.approved_version = None
        _move(order, job, S.IN_PROGRESS, actor, "approval_cleared", by_version=version.number,
              approved_version=cleared, reason="a newer version was saved after approval")
    return version


def update_version(order: Order, job_id: str, number: int, actor: str = "watcher", **fields: Any) -> Version:
    """Attach preview results or an error to an existing version (its file and hash never change)."""
    job = order.job(job_id)
    version = _version(order, job, number)
    allowed = {"preview", "thumb", "preview_key", "width", "height", "kind", "low_res", "note", "error",
               "paired_with", "paired_sha256"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"version fields cannot be changed: {sorted(unknown)}")
    changed = {k: v for k, v in fields.items() if getattr(version, k) != v}
    for key, value in changed.items():
        setattr(version, key, value)
    if "error" in changed:
        if version.error:
            record(order, actor, "version_error", job.job_id, version=number, error=version.error)
        else:
            record(order, actor, "version_error_cleared", job.job_id, version=number)
    if "preview" in changed and version.preview:
        record(order, actor, "preview_ready", job.job_id, version=number)
    if "paired_sha256" in changed and version.paired_sha256:
        record(order, actor, "paired", job.job_id, version=number, layered=version.paired_with)
    return version


def complete_version(order: Order, job_id: str, number: int, actor: str = "watcher", **fields: Any) -> Version:
    """A layered save versioned alone is completed by its export arriving later: one save, one version.

    The version keeps its number; its file becomes the export (what the buyer sees and what is delivered)
    and ``paired_with``/``paired_sha256`` name the layered source. Its preview is made again from the export.
    """
    job = order.job(job_id)
    version = _version(order, job, number)
    if job.latest is not version:
        raise TransitionError(f"version {number} of job {job.job_id} is not the latest; the export is a new save")
    allowed = {"copy", "sha256", "size", "source_name", "paired_with", "paired_sha256", "kind"}
    if set(fields) - allowed:
        raise ValueError(f"version fields cannot be completed: {sorted(set(fields) - allowed)}")
    layered = version.source_name
    for key, value in fields.items():
        setattr(version, key, value)
    version.preview = version.thumb = version.preview_key = version.note = version.error = None
    record(order, actor, "version_completed", job.job_id, version=number, layered=layered,
           export=version.source_name, sha256=version.sha256)
    return version


def record_move(order: Order, job_id: str, number: int, old: str, new: str, actor: str = "watcher") -> bool:
    """The artist moved or renamed a file that is already version ``number`` (or its layered source):
    the same work, so nothing but history changes. False when this move is already recorded."""
    job = order.job(job_id)
    _version(order, job, number)
    if any(e.event == "file_moved" and e.job_id == job.job_id and e.details.get("to") == new
           and e.details.get("version") == number for e in order.history):
        return False
    record(order, actor, "file_moved", job.job_id, version=number, **{"from": old, "to": new})
    return True


def note_conflict(order: Order, job_id: str, file_name: str, actor: str = "watcher", *, version: int | None = None,
                  original: str | None = None, sha256: str | None = None) -> bool:
    """A sync client's conflict copy (``file_name``, whose bytes are ``version``): shown on the job until the
    owner says which copy is current (:func:`resolve_conflict`); until then nothing is approved or delivered.
    False when it is already listed, or was resolved with these same bytes."""
    job = order.job(job_id)
    if file_name in job.conflicts:
        return False
    if any(e.event == "conflict_resolved" and e.job_id == job.job_id and e.details.get("file") == file_name
           and e.details.get("sha256") == sha256 for e in order.history):
        return False
    job.conflicts.append(file_name)
    record(order, actor, "sync_conflict", job.job_id, file=file_name, version=version, original=original,
           sha256=sha256)
    return True


def conflict_refusal(order: Order, job: Job) -> str | None:
    """The sentence that refuses approval or delivery while the job has an unresolved sync conflict."""
    if not job.conflicts:
        return None
    names = ", ".join(f"'{name}'" for name in job.conflicts)
    return (f"job {job.job_id} of order {order.receipt_id} has an unresolved sync conflict ({names}): choose "
            "on the job page which copy is current first")


def resolve_conflict(order: Order, job_id: str, file_name: str, current: int, actor: str = "review") -> None:
    """The owner compared a conflict copy with the other candidate and chose version ``current``."""
    job = order.job(job_id)
    _version(order, job, current)
    if file_name not in job.conflicts:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} has no conflict about that file")
    job.conflicts.remove(file_name)
    flagged = next((e for e in reversed(order.history) if e.event == "sync_conflict" and e.job_id == job.job_id
                    and e.details.get("file") == file_name), None)
    record(order, actor, "conflict_resolved", job.job_id, file=file_name, current=current,
           sha256=flagged.details.get("sha256") if flagged else None)


def references_arrived(order: Order, job_id: str, actor: str = "sync") -> None:
    job = order.job(job_id)
    if job.state is S.AWAITING_REFERENCES:
        _move(order, job, S.NEW, actor, "references_arrived")


def add_reference(order: Order, reference: Reference, actor: str = "watcher") -> bool:
    """Record a file found in ``references/`` (idempotent by job and name); its job stops awaiting references.

    Returns False when a reference of that name is already recorded for that job (nothing changes).
    """
    if reference.job_id is not None:
        order.job(reference.job_id)
    if any(r.name == reference.name and r.job_id == reference.job_id for r in order.references):
        return False
    order.references.append(reference)
    record(order, actor, "reference_added", reference.job_id, source=reference.source, sha256=reference.sha256)
    targets = [order.job(reference.job_id)] if reference.job_id else list(order.jobs)
    for job in targets:
        references_arrived(order, job.job_id, actor)
    return True


def record_downloads(order: Order, results: list[Reference], actor: str = "sync", *, retry: str = "") -> int:
    """Outcomes of reference downloads: each replaces the unfinished entry of its URL and job; a job whose
    buyer file arrived stops awaiting references; a job with failures shows them. Returns the failures left."""
    for result in results:
        for index, ref in enumerate(order.references):
            if ref.status != "ok" and (ref.url, ref.job_id, ref.source) == (result.url, result.job_id, result.source):
                if ref == result:
                    break  # the same failure again: nothing to record
                order.references[index] = result
                record(order, actor, "reference_fetched" if result.status == "ok" else "reference_failed",
                       result.job_id, name=result.name, source=result.source,
                       **({"error": result.error} if result.error else {"sha256": result.sha256}))
                break
    left = 0
    for job in order.jobs:
        mine = [r for r in order.references if r.job_id == job.job_id and r.url and r.source in ("buyer", "listing")]
        if any(r.status == "ok" and r.source == "buyer" for r in mine):
            references_arrived(order, job.job_id, actor)
        failed = [r for r in mine if r.status == "failed"]
        left += len(failed)
        if failed:
            s = "s" if len(failed) != 1 else ""
            set_error(order, job.job_id, f"{DOWNLOAD_ERROR_PREFIX}{len(failed)} reference file{s} could not be "
                                         f"fetched ({failed[0].error}){'; ' + retry if retry else ''}", actor)
        elif (job.last_error or "").startswith(DOWNLOAD_ERROR_PREFIX):
            set_error(order, job.job_id, None, actor)
    return left


def await_references(order: Order, job_id: str, actor: str = "sync") -> None:
    job = order.job(job_id)
    if job.state is S.NEW and not job.versions:
        _move(order, job, S.AWAITING_REFERENCES, actor, "awaiting_references")


# --------------------------------------------------------------------------------------------------
# Proofs and approval


def send_proof(order: Order, job_id: str, number: int, actor: str = "review", *, at: datetime | None = None) -> None:
    """The owner sent this version's watermarked preview to the buyer through Etsy Messages."""
    job = order.job(job_id)
    _version(order, job, number)
    _move(order, job, S.PROOF_SENT, actor, "proof_sent", version=number)
    job.proofs.append(Proof(version=number, sent_at=at or utcnow()))


def record_answer(order: Order, job_id: str, approved: bool, note: str = "", actor: str = "review",
                  *, included_revisions: int | None = None, at: datetime | None = None) -> None:
    """The buyer answered the latest proof: approved, or changes requested (counted as a revision)."""
    job = order.job(job_id)
    if job.state is not S.PROOF_SENT or not job.proofs:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} has no proof waiting for an answer")
    proof = job.proofs[-1]
    proof.answered_at = at or utcnow()
    proof.note = note or None
    if approved and (refusal := conflict_refusal(order, job)):
        raise TransitionError(refusal)
    if approved:
        proof.answer = "approved"
        job.approved_version = proof.version
        job.changes_note = None
        _move(order, job, S.APPROVED, actor, "buyer_approved", version=proof.version)
        return
    proof.answer = "changes_requested"
    job.revisions_used += 1
    job.changes_note = note or None
    extra = included_revisions is not None and job.revisions_used > included_revisions
    _move(order, job, S.CHANGES_REQUESTED, actor, "changes_requested", version=proof.version,
          revision=job.revisions_used, included=included_revisions, beyond_included=extra)


def approve(order: Order, job_id: str, number: int, actor: str = "review") -> None:
    """The owner approves one specific version for delivery."""
    job = order.job(job_id)
    _version(order, job, number)
    if refusal := conflict_refusal(order, job):
        raise TransitionError(refusal)
    if job.state is S.APPROVED and job.approved_version == number:
        return
    if job.state is S.APPROVED:
        previous = job.approved_version
        job.approved_version = number
        record(order, actor, "approval_changed", job.job_id, version=number, previous=previous)
        return
    if job.state is S.READY_TO_DELIVER:
        # The files built from the previous approval stay recorded until ``delivery.drop_stale`` takes them
        # out of deliver/ (forgetting them here would leave them there as strangers).
        _move(order, job, S.APPROVED, actor, "approval_changed", version=number, previous=job.approved_version)
        job.approved_version = number
        return
    _move(order, job, S.APPROVED, actor, "approved", version=number)
    job.approved_version = number


def hold(order: Order, job_id: str, reason: str = "", actor: str = "review") -> None:
    job = order.job(job_id)
    before = job.state
    _move(order, job, S.ON_HOLD, actor, "put_on_hold", reason=reason)
    job.held_from = before


def reopen(order: Order, job_id: str, actor: str = "review") -> None:
    """Back from hold to where the job was; a delivered or cancelled job reopens for more work."""
    job = order.job(job_id)
    if job.state is S.ON_HOLD:
        target = job.held_from or (S.IN_PROGRESS if job.versions else S.NEW)
        job.held_from = None
        _move(order, job, target, actor, "reopened")
    elif job.state in (S.DELIVERED, S.CANCELLED):
        _move(order, job, S.IN_PROGRESS if job.versions else S.NEW, actor, "reopened")
    else:
        raise TransitionError(
            f"job {job.job_id} of order {order.receipt_id} is {job.state.label}, not closed or on hold"
        )


# --------------------------------------------------------------------------------------------------
# Delivery


def mark_ready(order: Order, job_id: str, deliverables: list[Deliverable], actor: str = "delivery") -> None:
    job = order.job(job_id)
    if job.approved_version is None:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} has no approved version")
    if refusal := conflict_refusal(order, job):
        raise TransitionError(refusal)
    job.deliverables = list(deliverables)
    _move(order, job, S.READY_TO_DELIVER, actor, "ready_to_deliver", version=job.approved_version,
          files=[d.name for d in deliverables])


def mark_delivered(order: Order, job_id: str, confirmed_by: str, actor: str = "sync",
                   *, at: datetime | None = None) -> None:
    """Etsy shows the receipt completed (``confirmed_by='etsy'``) or the owner confirmed by hand."""
    job = order.job(job_id)
    if job.state is S.DELIVERED:
        return
    _move(order, job, S.DELIVERED, actor, "delivered", confirmed_by=confirmed_by, version=job.approved_version)
    job.delivered_at = at or utcnow()
    job.delivery_confirmed_by = confirmed_by


def clear_deliverables(order: Order, job_id: str, reason: str, actor: str = "delivery") -> list[str]:
    """Forget the deliverables of a job that is no longer ready (their files were removed from deliver/).

    A job still ready to deliver keeps them: rebuilding goes through :func:`mark_ready`, which replaces them.
    """
    job = order.job(job_id)
    if job.state is S.READY_TO_DELIVER:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} is ready to deliver; rebuild instead")
    if not job.deliverables:
        return []
    names = [d.name for d in job.deliverables]
    job.deliverables = []
    record(order, actor, "deliverables_removed", job.job_id, files=names, why=reason)
    return names


def set_framing(order: Order, job_id: str, key: str, position: float | None, margins: bool,
                actor: str = "review") -> None:
    """Where deliverable ``key``'s crop frame sits (None = centred), or margins instead of a crop. Files built
    with another frame no longer match: a ready job goes back to approved (its files leave deliver/)."""
    job = order.job(job_id)
    if job.state in (S.DELIVERED, S.CANCELLED):
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} is {job.state.label}; its files are final")
    if position is None:
        job.crop.pop(key, None)
    else:
        job.crop[key] = round(min(1.0, max(0.0, position)), 4)
    job.margins = sorted(set(job.margins) - {key} | ({key} if margins else set()))
    record(order, actor, "crop_set", job.job_id, deliverable=key, position=job.crop.get(key), margins=margins)
    if job.state is S.READY_TO_DELIVER:
        _move(order, job, S.APPROVED, actor, "reframed", why="the crop changed after the files were built")


def add_addon(order: Order, addon: AddOn, *, rush_days: int, urgent: bool, actor: str = "sync") -> None:
    """An add-on line item (e.g. Rush): shown on the order; it may move the due date sooner and mark it urgent."""
    effects = []
    if rush_days and order.ship_by is not None:
        order.ship_by -= timedelta(days=rush_days)
        effects.append(f"due {rush_days} day{'s' if rush_days != 1 else ''} sooner")
    if urgent:
        order.urgent = True
        effects.append("urgent")
    addon.effect = ", ".join(effects)
    order.addons.append(addon)
    record(order, actor, "addon", None, title=addon.title, workflow=addon.workflow, effect=addon.effect,
           ship_by=order.ship_by.isoformat() if order.ship_by else None)


def flag(order: Order, job_id: str | None, code: str, message: str, actor: str) -> None:
    """A loud, sticky warning (e.g. completed on Etsy without approval); recorded once."""
    target = order.job(job_id) if job_id else None
    flags = target.flags if target else order.extra.setdefault("flags", [])
    if code in flags:
        return
    flags.append(code)
    if target:
        target.last_error = message
    else:
        order.last_error = message
    record(order, actor, "flagged", job_id, code=code, message=message)


# --------------------------------------------------------------------------------------------------
# Etsy side


def cancel(order: Order, reason: str, actor: str = "sync", *, at: datetime | None = None) -> None:
    """Etsy cancelled or refunded the order: every open job stops. The artist's files stay."""
    changed = False
    for job in order.jobs:
        if job.state in (S.CANCELLED, S.DELIVERED):
            continue
        job.held_from = None
        _move(order, job, S.CANCELLED, actor, "cancelled", reason=reason)
        changed = True
    if changed:
        order.cancelled_at = at or utcnow()


def etsy_completed(order: Order, actor: str = "sync", *, at: datetime | None = None) -> None:
    """Etsy shows the receipt completed/shipped: the files went out on Etsy's order page.

    Jobs that were ready (or approved) become delivered, confirmed by Etsy. A job completed on Etsy
    that was never approved is flagged loudly instead: the buyer may have received the wrong file.
    """
    order.etsy_completed = True
    for job in order.jobs:
        if job.state in (S.DELIVERED, S.CANCELLED):
            continue
        if job.state in (S.READY_TO_DELIVER, S.APPROVED) and job.approved_version is not None:
            mark_delivered(order, job.job_id, confirmed_by="etsy", actor=actor, at=at)
        else:
            flag(order, job.job_id, "completed_without_approval",
                 f"Etsy shows order {order.receipt_id} completed, but job {job.job_id} was never approved "
                 f"(it is {job.state.label}): check what the buyer received", actor)


def set_etsy_status(order: Order, status: str, actor: str = "sync") -> None:
    if order.etsy_status != status:
        record(order, actor, "etsy_status", None, **{"from": order.etsy_status, "to": status})
        order.etsy_status = status


# --------------------------------------------------------------------------------------------------
# Errors, notes, privacy


def set_error(order: Order, job_id: str | None, message: str | None, actor: str) -> None:
    """Record (or clear, with ``None``) the last error of an order or job; logged in history once."""
    target = order.job(job_id) if job_id else order
    if target.last_error == message:
        return
    target.last_error = message
    record(order, actor, "error" if message else "error_cleared", job_id, **({"message": message} if message else {}))


def add_note(order: Order, text: str, job_id: str | None = None, actor: str = "review") -> None:
    text = text.strip()
    if not text:
        raise TransitionError("an empty note was not saved")
    order.notes.append(Note(at=utcnow(), text=text[:5000], job_id=job_id))
    record(order, actor, "note_added", job_id)


def pseudonym_for(receipt_id: int, salt: str) -> str:
    """A stable stand-in for a buyer's name: the same receipt always gets the same one."""
    digest = hashlib.sha256(f"{salt}:{receipt_id}".encode()).hexdigest()[:8]
    return f"buyer-{digest}"


def anonymise(order: Order, salt: str, actor: str = "retention") -> list[str]:
    """Remove buyer-identifying text; ids, dates, listings and the history of states stay."""
    removed: list[str] = []
    order.pseudonym = order.pseudonym or pseudonym_for(order.receipt_id, salt)
    if order.buyer_name != order.pseudonym:
        order.buyer_name = order.pseudonym
        removed.append("buyer_name")
    if order.buyer_user_id is not None:
        order.buyer_user_id = None
        removed.append("buyer_user_id")
    for name in ("gift_message", "message_from_buyer"):
        if getattr(order, name):
            setattr(order, name, "")
            removed.append(name)
    if order.notes:
        order.notes = []
        removed.append("notes")
    for job in order.jobs:
        if job.answers:
            for answer in job.answers:
                answer.answer = "(removed)"
                answer.files = []
            removed.append(f"answers of job {job.job_id}")
        if job.changes_note:
            job.changes_note = None
            removed.append(f"changes note of job {job.job_id}")
        for proof in job.proofs:
            proof.note = None
    for position, ref in enumerate(order.references, start=1):
        ref.url = None
        ref.label = None
        # The buyer named these files; the files themselves are gone by now (files step first).
        suffix = ref.name[ref.name.rfind("."):] if "." in ref.name else ""
        ref.name = f"reference-{position}{suffix if suffix.isascii() and len(suffix) <= 8 else ''}"
    for entry in order.history:
        # History keeps its events and states; free-text details that could carry personal data go.
        for key in ("message", "note", "reason", "text", "source", "file"):
            if key in entry.details and entry.event not in ("etsy_status",):
                entry.details[key] = "(removed)"
    record(order, actor, "anonymised", None, removed=removed)
    order.anonymised_at = utcnow()
    return removed


def files_purged(order: Order, references: list[int], versions: dict[str, list[int]], actor: str = "retention",
                 *, at: datetime | None = None) -> None:
    """Retention deleted these references (positions in ``order.references``) and version files.

    The manifest stops pointing at the deleted files; the versions themselves (numbers, hashes, dates)
    stay as the record of the work.
    """
    for position in references:
        ref = order.references[position]
        ref.status = "deleted"
        ref.thumb = None
    for job_id, numbers in versions.items():
        job = order.job(job_id)
        for number in numbers:
            version = _version(order, job, number)
            version.copy = ""
            version.preview = version.thumb = version.preview_key = None
    order.files_purged_at = at or utcnow()
    record(order, actor, "files_purged", None, references=len(references),
           versions={job_id: list(numbers) for job_id, numbers in versions.items() if numbers})


def keep_until(order: Order, until: datetime, reason: str, actor: str = "cli") -> None:
    """The owner keeps an order's data past its retention date, for a reason (a dispute, a reorder)."""
    reason = reason.strip()
    if not reason:
        raise TransitionError("say why the order is kept longer (a reason is recorded)")
    order.keep_until = until.replace(microsecond=0)
    record(order, actor, "retention_kept", None, until=order.keep_until.isoformat(), reason=reason[:500])


def redact(order: Order, name: Callable[[str], str], text: Callable[[str], str], actor: str = "retention") -> int:
    """Pass every manifest field that can carry a file name (``name``) or free text (``text``) through the
    given redactors: references, version sources and their pairs, conflict copies, notes, messages, errors,
    and every text in history details. Returns how many values changed (recorded once in history)."""
    changed = 0

    def fix(value: str | None, redactor: Callable[[str], str]) -> str | None:
        nonlocal changed
        if not value:
            return value
        new = redactor(value)
        changed += new != value
        return new

    def fix_details(value: Any) -> Any:
        if isinstance(value, str):
            return fix(value, text)
        if isinstance(value, list):
            return [fix_details(item) for item in value]
        if isinstance(value, dict):
            return {key: fix_details(item) for key, item in value.items()}
        return value

    order.gift_message = fix(order.gift_message, text) or ""
    order.message_from_buyer = fix(order.message_from_buyer, text) or ""
    order.last_error = fix(order.last_error, text)
    for note in order.notes:
        note.text = fix(note.text, text) or ""
    for ref in order.references:
        ref.name = fix(ref.name, name) or ref.name
        ref.label, ref.error = fix(ref.label, text), fix(ref.error, text)
    for job in order.jobs:
        job.changes_note, job.last_error = fix(job.changes_note, text), fix(job.last_error, text)
        job.conflicts = [fix(c, name) or c for c in job.conflicts]
        for answer in job.answers:
            answer.answer = fix(answer.answer, text) or ""
        for proof in job.proofs:
            proof.note = fix(proof.note, text)
        for version in job.versions:
            version.source_name = fix(version.source_name, name) or version.source_name
            version.paired_with = fix(version.paired_with, name)
            version.note, version.error = fix(version.note, text), fix(version.error, text)
    for entry in order.history:
        entry.details = fix_details(entry.details)
    if changed:
        record(order, actor, "redacted", None, count=changed)
    return changed
