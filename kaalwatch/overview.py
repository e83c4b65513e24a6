"""The few numbers the owner looks at first — active, overdue, due soon, saves in progress — computed once
for both ``kaalwatch status`` and the review page's header, so the two never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kaalwatch.model import parse_time
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.workflows import by_name

#: The daemon rewrites health.json every few seconds; older than this and its numbers are not shown.
FRESH_HEALTH_SECONDS = 30
#: What "queued" counts, in words (the page shows it on hover, ``status`` after the number).
QUEUED_MEANS = ("saves the watcher is handling: files still being written or settling, and versions "
                "whose preview is being rendered")


@dataclass(frozen=True)
class Counts:
    active: int
    overdue: int
    due_soon: int  # not overdue, but within the workflow's slack days of ship-by
    queued: int | None  # None: no fresh word from the daemon

    def line(self) -> str:
        queued = "daemon not running" if self.queued is None else f"{self.queued} queued"
        return f"{self.active} active · {self.overdue} overdue · {self.due_soon} due soon · {queued}"


def fresh_health(health: dict[str, Any], now: datetime) -> bool:
    """True when a running daemon wrote ``health`` within ``FRESH_HEALTH_SECONDS``."""
    value = health.get("updated_at")
    if isinstance(value, bool) or health.get("running", True) is False:
        return False
    if isinstance(value, int | float):
        updated = float(value)
    else:
        try:
            moment = parse_time(value) if isinstance(value, str) else None
        except ValueError:
            return False
        if moment is None:
            return False
        updated = moment.timestamp()
    return now.timestamp() - updated <= FRESH_HEALTH_SECONDS


def counts(ws: Workspace, settings: Settings, now: datetime, health: dict[str, Any] | None = None) -> Counts:
    health = ws.read_state("health") if health is None else health
    overdue = due = active = 0
    for row in ws.jobs(active=True, limit=100_000):
        active += 1
        if row.ship_by is None:
            continue
        days = (row.ship_by.date() - now.date()).days
        slack = by_name(settings.workflows, settings.default_workflow, row.workflow).due_slack_days
        if days < 0:
            overdue += 1
        elif days <= slack:
            due += 1
    queued = int(health.get("queue_length") or 0) if fresh_health(health, now) else None
    return Counts(active, overdue, due, queued)
