"""Retention's changes: anonymise buyer text, forget deleted files, keep longer, redact names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kaalwatch.errors import TransitionError
from kaalwatch.lifecycle.moves import _version, record
from kaalwatch.model import Order, utcnow


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
        job.hold_reason = None
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
        for key in ("message", "note", "reason", "text", "source", "file", "undo"):
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
    order.errors = {source: fix(message, text) or "" for source, message in order.errors.items()}
    for note in order.notes:
        note.text = fix(note.text, text) or ""
    for ref in order.references:
        ref.name = fix(ref.name, name) or ref.name
        ref.label, ref.error = fix(ref.label, text), fix(ref.error, text)
    for job in order.jobs:
        job.changes_note, job.hold_reason = fix(job.changes_note, text), fix(job.hold_reason, text)
        job.errors = {source: fix(message, text) or "" for source, message in job.errors.items()}
        for conflict in (*job.conflicts, *job.settled_conflicts):
            conflict.file = fix(conflict.file, name) or conflict.file
            conflict.original = fix(conflict.original, name) or ""
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

