"""The artist's saves: new versions, their previews and pairs, moves, and sync-client conflicts."""

from __future__ import annotations

from typing import Any

from kaalwatch.errors import TransitionError
from kaalwatch.lifecycle.moves import S, _move, _version, record
from kaalwatch.model import Conflict, Job, Order, Version


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
    the same work, so nothing but history changes. False when this move is already recorded (history is
    read here only so the same event is not recorded twice; no decision rests on it)."""
    job = order.job(job_id)
    _version(order, job, number)
    if any(e.event == "file_moved" and e.job_id == job.job_id and e.details.get("to") == new
           and e.details.get("version") == number for e in order.history):
        return False
    moved: dict[str, Any] = {"version": number, "from": old, "to": new}
    record(order, actor, "file_moved", job.job_id, **moved)
    return True


def note_conflict(order: Order, job_id: str, file_name: str, actor: str = "watcher", *, version: int | None = None,
                  original: str | None = None, sha256: str | None = None) -> bool:
    """A sync client's conflict copy (``file_name``, whose bytes are ``version``): shown on the job until the
    owner says which copy is current (:func:`resolve_conflict`); until then nothing is approved or delivered.
    False when it is already listed, or was resolved with these same bytes."""
    job = order.job(job_id)
    conflict = Conflict(file_name, version, original or "", sha256 or "")
    if any(c.file == file_name for c in job.conflicts):
        return False
    if any(c.file == file_name and c.sha256 == conflict.sha256 for c in job.settled_conflicts):
        return False
    job.conflicts.append(conflict)
    record(order, actor, "sync_conflict", job.job_id, file=file_name, version=version, original=original,
           sha256=sha256)
    return True


def conflict_refusal(order: Order, job: Job) -> str | None:
    """The sentence that refuses approval or delivery while the job has an unresolved sync conflict."""
    if not job.conflicts:
        return None
    names = ", ".join(f"'{c.file}'" for c in job.conflicts)
    return (f"job {job.job_id} of order {order.receipt_id} has an unresolved sync conflict ({names}): choose "
            "on the job page which copy is current first")


def resolve_conflict(order: Order, job_id: str, file_name: str, current: int, actor: str = "review") -> None:
    """The owner compared a conflict copy with the other candidate and chose version ``current``; the copy
    moves to ``settled_conflicts`` so the same bytes under the same name are not flagged again."""
    job = order.job(job_id)
    _version(order, job, current)
    conflict = next((c for c in job.conflicts if c.file == file_name), None)
    if conflict is None:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} has no conflict about that file")
    job.conflicts.remove(conflict)
    if conflict not in job.settled_conflicts:
        job.settled_conflicts.append(conflict)
    record(order, actor, "conflict_resolved", job.job_id, file=file_name, current=current,
           sha256=conflict.sha256 or None)
