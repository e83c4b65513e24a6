"""The daily job that cannot be missed: every run recorded, a missed day caught up at start-up, and a forecast
of the next run for ``status`` and the page.

``state/retention.json`` holds ``last_run`` (ISO time), ``summary``, ``counts`` (see
:meth:`PurgeReport.counts`), ``errors`` (receipt id → one line, no buyer text) and ``next`` (the forecast
made after the run: when, how many orders lose files / identity then, and the orders purged within a week
for lack of activity, with their dates). Receipt ids and counts only: the state file never holds buyer text.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kaalwatch.errors import ManifestError
from kaalwatch.model import iso, parse_time, utcnow
from kaalwatch.retention import clock
from kaalwatch.retention.apply import purge
from kaalwatch.retention.report import PurgeReport
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

STATE = "retention"
CATCH_UP_AFTER = timedelta(days=1)


def next_run(settings: Settings, after: datetime) -> datetime:
    """The next local ``run_hour`` o'clock strictly after ``after``."""
    local = after.astimezone()
    candidate = local.replace(hour=settings.retention.run_hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate


def forecast(ws: Workspace, settings: Settings, at: datetime) -> dict[str, Any]:
    """What the run at ``at`` will do, from the retention clock alone (no file is read but manifests)."""
    files = identity = 0
    warnings: dict[str, str] = {}
    for _folder, order in ws.iter_orders():
        if isinstance(order, ManifestError):
            continue
        when = clock.due(order, settings, at)
        if when is None:
            continue
        files += when.files and not order.files_purged_at
        identity += when.anonymise and not order.anonymised_at
        if when.basis == "no activity" and not when.kept and when.files_at <= at + timedelta(days=clock.WARN_DAYS):
            warnings[str(order.receipt_id)] = when.files_at.date().isoformat()
    return {"at": iso(at), "files": files, "anonymise": identity, "warnings": warnings}


def scheduled_purge(ws: Workspace, settings: Settings, *, now: datetime | None = None) -> PurgeReport:
    """The daily job: purge, then record when, what and what comes next."""
    moment = now or utcnow()
    report = purge(ws, settings, now=moment)
    ws.write_state(STATE, {
        "last_run": iso(moment),
        "summary": report.summary(),
        "counts": report.counts(),
        "errors": {str(k): v for k, v in report.errors.items()},
        "next": forecast(ws, settings, next_run(settings, moment)),
    })
    return report


def missed(ws: Workspace, now: datetime | None = None) -> bool:
    """True when retention has never run here or last ran more than a day ago (the machine was off)."""
    last = parse_time(ws.read_state(STATE).get("last_run"))
    return last is None or (now or utcnow()) - last > CATCH_UP_AFTER


def status_lines(ws: Workspace) -> list[str]:
    """Two or three lines for ``status`` and the page: the last run, the next one, and the warnings."""
    state = ws.read_state(STATE)
    if not state.get("last_run"):
        return ["retention: has not run yet (the daemon runs it at start-up and daily)"]
    lines = [f"retention: last ran {state['last_run']}: {state.get('summary', '')}"]
    upcoming = state.get("next") or {}
    if upcoming:
        lines.append(f"retention next: {upcoming.get('at')}: files of {upcoming.get('files', 0)} order(s), "
                     f"identity of {upcoming.get('anonymise', 0)}")
        warned = upcoming.get("warnings") or {}
        if warned:
            listed = ", ".join(f"{rid} on {day}" for rid, day in sorted(warned.items()))
            lines.append(f"retention warning: no activity, purged within a week: {listed} "
                         f"(keep one with `kaalwatch keep RECEIPT_ID --days N --reason TEXT`)")
    return lines
