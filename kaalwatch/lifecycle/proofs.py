"""The owner's actions on a job: proofs and the buyer's answers, approval, hold, reopen, notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaalwatch.errors import TransitionError
from kaalwatch.lifecycle.moves import S, _move, _version, record, refusal
from kaalwatch.lifecycle.undoing import _snapshot
from kaalwatch.lifecycle.versions import conflict_refusal
from kaalwatch.model import Note, Order, Proof, utcnow


def send_proof(order: Order, job_id: str, number: int, actor: str = "review", *, at: datetime | None = None) -> None:
    """The owner sent this version's watermarked preview to the buyer through Etsy Messages."""
    job = order.job(job_id)
    _version(order, job, number)
    if any(p.version >= number and p.answer == "changes_requested" for p in job.proofs):
        raise refusal(job, f"cannot get another proof of version {number}: the buyer already asked for "
                           "changes to it — save a new version first")
    if job.state is S.PROOF_SENT and job.proofs and job.proofs[-1].version >= number:
        raise refusal(job, f"already has the proof of version {job.proofs[-1].version} with the buyer — "
                           "record their answer, or send a newer version")
    snapshot = _snapshot(order, job)
    _move(order, job, S.PROOF_SENT, actor, "proof_sent", version=number, undo=snapshot)
    job.proofs.append(Proof(version=number, sent_at=at or utcnow()))


def record_answer(order: Order, job_id: str, approved: bool, note: str = "", actor: str = "review",
                  *, included_revisions: int | None = None, at: datetime | None = None) -> None:
    """The buyer answered the latest proof: approved, or changes requested (counted as a revision)."""
    job = order.job(job_id)
    if job.state is not S.PROOF_SENT or not job.proofs:
        raise TransitionError("Nothing was done: this item has no proof waiting for an answer.")
    proof = job.proofs[-1]
    if not approved and any(p.version == proof.version and p.answer == "changes_requested" for p in job.proofs):
        raise TransitionError(f"Nothing was done: changes to version {proof.version} were already recorded; "
                              "one round of changes counts once per version — save a new version first.")
    snapshot = _snapshot(order, job)
    proof.answered_at = at or utcnow()
    proof.note = note or None
    if approved and (refusal := conflict_refusal(order, job)):
        raise TransitionError(refusal)
    if approved:
        proof.answer = "approved"
        job.approved_version = proof.version
        job.changes_note = None
        _move(order, job, S.APPROVED, actor, "buyer_approved", version=proof.version, undo=snapshot)
        return
    proof.answer = "changes_requested"
    job.revisions_used += 1
    job.changes_note = note or None
    extra = included_revisions is not None and job.revisions_used > included_revisions
    _move(order, job, S.CHANGES_REQUESTED, actor, "changes_requested", version=proof.version,
          revision=job.revisions_used, included=included_revisions, beyond_included=extra, undo=snapshot)


def approve(order: Order, job_id: str, number: int, actor: str = "review") -> None:
    """The owner approves one specific version for delivery."""
    job = order.job(job_id)
    _version(order, job, number)
    if refusal := conflict_refusal(order, job):
        raise TransitionError(refusal)
    if job.state is S.APPROVED and job.approved_version == number:
        return
    snapshot = _snapshot(order, job)
    if job.state is S.APPROVED:
        previous = job.approved_version
        job.approved_version = number
        record(order, actor, "approval_changed", job.job_id, version=number, previous=previous, undo=snapshot)
        return
    if job.state is S.READY_TO_DELIVER:
        # The files built from the previous approval stay recorded until the workspace's edit takes them out
        # of deliver/ (kaalwatch.deliver_folder; forgetting them here would leave them there as strangers).
        _move(order, job, S.APPROVED, actor, "approval_changed", version=number, previous=job.approved_version)
        job.approved_version = number
        return
    _move(order, job, S.APPROVED, actor, "approved", version=number, undo=snapshot)
    job.approved_version = number


def hold(order: Order, job_id: str, reason: str = "", actor: str = "review") -> None:
    job = order.job(job_id)
    before = job.state
    _move(order, job, S.ON_HOLD, actor, "put_on_hold", reason=reason, undo=_snapshot(order, job))
    job.held_from = before
    job.hold_reason = reason or None


def reopen(order: Order, job_id: str, actor: str = "review") -> None:
    """Back from hold to where the job was; a delivered or cancelled job reopens for more work."""
    job = order.job(job_id)
    if job.state is S.ON_HOLD:
        target = job.held_from or (S.IN_PROGRESS if job.versions else S.NEW)
        job.held_from = None
        job.hold_reason = None
        _move(order, job, target, actor, "reopened")
    elif job.state in (S.DELIVERED, S.CANCELLED):
        _move(order, job, S.IN_PROGRESS if job.versions else S.NEW, actor, "reopened")
    else:
        raise refusal(job, "is not closed or on hold: there is nothing to reopen")


def add_note(order: Order, text: str, job_id: str | None = None, actor: str = "review") -> None:
    text = text.strip()
    if not text:
        raise TransitionError("an empty note was not saved")
    undo = _snapshot(order, order.job(job_id)) if job_id else None
    order.notes.append(Note(at=utcnow(), text=text[:5000], job_id=job_id))
    details: dict[str, Any] = {"undo": undo} if undo else {}
    record(order, actor, "note_added", job_id, **details)

