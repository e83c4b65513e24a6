"""Reference files: planned by sync, fetched by the download queue, dropped in by the artist."""

from __future__ import annotations

from kaalwatch.lifecycle.moves import S, _move, record, set_error
from kaalwatch.model import Order, Reference

_DOWNLOAD = "download: "  # the download queue's warnings (source "download") say so to the reader


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
            set_error(order, job.job_id, f"{_DOWNLOAD}{len(failed)} reference file{s} could not be "
                                         f"fetched ({failed[0].error}){'; ' + retry if retry else ''}", actor,
                      source="download")
        else:
            set_error(order, job.job_id, None, actor, source="download")
    return left


def await_references(order: Order, job_id: str, actor: str = "sync") -> None:
    job = order.job(job_id)
    if job.state is S.NEW and not job.versions:
        _move(order, job, S.AWAITING_REFERENCES, actor, "awaiting_references")



def plan_downloads(order: Order, planned: list[Reference], limit: int, actor: str = "sync") -> list[Reference]:
    """A new order's buyer uploads and style samples, ``pending`` until the download queue fetches them; at
    most ``limit`` (the others stay in the answers, as links, and the order says so). Returns the kept ones."""
    kept = planned[:limit]
    order.references.extend(kept)
    if kept:
        record(order, actor, "references_planned", None, count=len(kept))
    if len(planned) > limit:
        set_error(order, None, f"{_DOWNLOAD}only the first {limit} of {len(planned)} files are downloaded; the "
                  "others are listed with the answers", actor, source="download")
    return kept
