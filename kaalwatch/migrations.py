"""Numbered migrations of ``order.yaml``: each a pure function from one schema's plain data to the next's.

A manifest is migrated in memory when it is read; the file changes only when the order is next written
(``Workspace._write``), which first keeps the original bytes beside it as ``order.yaml.schema<N>.bak``.
A manifest of a newer schema than :data:`SCHEMA_VERSION` is refused by the reader, never migrated down.
To change the schema: bump ``SCHEMA_VERSION``, add ``migrate_N_to_N1`` to :data:`STEPS`, store an old
manifest under ``tests/data/manifests/`` and test the step on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 3

Data = dict[str, Any]

_LEGACY_WARNINGS = ("last_error", "flags")


def _without_legacy_warnings(record: Any) -> Any:
    if not isinstance(record, dict):
        return record
    return {key: value for key, value in record.items() if key not in _LEGACY_WARNINGS}


def migrate_1_to_2(data: Data) -> Data:
    """Schema 2: warnings have sources, and the Etsy shipment is a typed field.

    Before warnings had sources they were one sticky ``last_error`` (and ``flags``) per order and job:
    dropped, because nothing could ever clear them; the next sync, rescan or build records what is still
    wrong. Delivery kept its shipment in the bag of unknown top-level keys (``shipment:`` with ``status``,
    ``attempts``, ``at``, ``error``); it is read as ``Order.shipment`` now, where the same mapping fits.
    """
    out = _without_legacy_warnings(data)
    jobs = out.get("jobs")
    if isinstance(jobs, list):
        out["jobs"] = [_without_legacy_warnings(job) for job in jobs]
    out["schema"] = 2
    return out


def _conflict(file: Any, flagged: Data, sha256: Any = None) -> Data:
    return {"file": file, "version": flagged.get("version"), "original": flagged.get("original") or "",
            "sha256": sha256 or flagged.get("sha256") or ""}


def migrate_2_to_3(data: Data) -> Data:
    """Schema 3: a job's sync conflicts are typed records, not names whose facts live in history.

    ``conflicts: [name, ...]`` becomes ``[{file, version, original, sha256}, ...]`` from the latest
    ``sync_conflict`` event of that job and file, and each ``conflict_resolved`` event becomes an entry of
    ``settled_conflicts`` (so the same bytes under the same name are still not flagged again).
    """
    flagged: dict[tuple[str, Any], Data] = {}
    settled: dict[str, list[Data]] = {}
    history = data.get("history")
    for event in history if isinstance(history, list) else []:
        details = event.get("details") if isinstance(event, dict) else None
        if not isinstance(details, dict):
            continue
        job_id, file = str(event.get("job_id")), details.get("file")
        if event.get("event") == "sync_conflict":
            flagged[job_id, file] = details
        elif event.get("event") == "conflict_resolved":
            resolved = _conflict(file, flagged.get((job_id, file), {}), details.get("sha256"))
            settled.setdefault(job_id, []).append(resolved)
    out = dict(data)
    jobs = out.get("jobs")
    if isinstance(jobs, list):
        out["jobs"] = [_typed_conflicts(job, flagged, settled) for job in jobs]
    out["schema"] = 3
    return out


def _typed_conflicts(job: Any, flagged: dict[tuple[str, Any], Data], settled: dict[str, list[Data]]) -> Any:
    if not isinstance(job, dict):
        return job
    job_id = str(job.get("job_id"))
    names = job.get("conflicts") or []
    conflicts = [_conflict(name, flagged.get((job_id, name), {})) if isinstance(name, str) else name
                 for name in names]
    return {**job, "conflicts": conflicts, "settled_conflicts": settled.get(job_id, [])}


#: ``STEPS[n]`` migrates schema ``n`` to ``n + 1``.
STEPS: dict[int, Callable[[Data], Data]] = {1: migrate_1_to_2, 2: migrate_2_to_3}


def migrate(data: Data) -> tuple[Data, int]:
    """``data`` brought to :data:`SCHEMA_VERSION`, and the schema it was written in.

    The caller has checked that ``data["schema"]`` is a whole number not above ``SCHEMA_VERSION``.
    """
    version = from_version = int(data["schema"])
    while version < SCHEMA_VERSION:
        data = STEPS[version](data)
        version += 1
    return data, from_version
