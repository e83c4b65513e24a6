"""Every page's status line: when the last sync ran and whether the daemon's watcher is alive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from kaalwatch import overview
from kaalwatch.etsy.ratelimit import describe_not_before
from kaalwatch.overview import to_datetime
from review_app.runtime import runtime

bp = Blueprint("health", __name__)

# The daemon rewrites health.json every few seconds; older than this and it is presumed dead.
STALE_SECONDS = 60


def status(now: datetime | None = None) -> dict[str, Any]:
    ws = runtime().ws
    health = ws.read_state("health")
    sync = ws.read_state("sync")
    now = now or datetime.now(UTC)
    updated = to_datetime(health.get("updated_at"))
    fresh = updated is not None and (now - updated).total_seconds() <= STALE_SECONDS
    if not health:
        watcher = "daemon not running"
    elif not fresh:
        watcher = "daemon not responding"
    elif health.get("watcher_alive"):
        watcher = "watcher alive"
    else:
        watcher = "watcher stopped"
    errors = listed if isinstance(listed := health.get("errors"), list) else []
    retention = ws.read_state("retention")
    upcoming = planned if isinstance(planned := retention.get("next"), dict) else {}
    warned = told if isinstance(told := upcoming.get("warnings"), dict) else {}
    return {
        "retention_last": retention.get("last_run"),
        "retention_summary": retention.get("summary") if isinstance(retention.get("summary"), str) else "",
        "retention_next": upcoming.get("at"),
        "retention_warned": len(warned),
        "last_sync": sync.get("last_success"),
        "last_attempt": sync.get("last_attempt"),
        "sync_error": sync.get("last_error") if isinstance(sync.get("last_error"), str) else None,
        "watcher": watcher,
        "watcher_ok": bool(fresh and health.get("watcher_alive")),
        "queue_length": health.get("queue_length") if fresh else None,
        "errors": [str(e) for e in errors[-3:]],
        "etsy_wait": describe_not_before(sync),
    }


def header_counts() -> overview.Counts:
    """The header's numbers: the same function ``kaalwatch status`` prints them from."""
    rt = runtime()
    return overview.counts(rt.ws, rt.settings, datetime.now(UTC))


@bp.app_context_processor
def inject_health() -> dict[str, Any]:
    return {"health": status(), "header_counts": header_counts, "queued_means": overview.QUEUED_MEANS}
