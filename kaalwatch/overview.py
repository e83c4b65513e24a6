"""The few numbers the owner looks at first — active, overdue, due soon, saves in progress — computed once
for both ``kaalwatch status`` and the review page's header, so the two never disagree; and the forgiving
reading of the times in the state files they come from."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def days_left(ship_by: datetime | None, now: datetime | None = None) -> int | None:
    """Calendar days until the ship-by date (negative: overdue), by UTC dates like the rest of the tool."""
    if ship_by is None:
        return None
    return (ship_by.date() - (now or datetime.now(UTC)).date()).days


def to_datetime(value: Any) -> datetime | None:
    """Epoch seconds, ISO text or a datetime → an aware datetime (None when it is none of those)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # else epoch seconds written as text, or nothing readable
            value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def fresh_health(health: Mapping[str, Any], now: datetime) -> bool:
    """True when a running daemon wrote ``health`` within ``FRESH_HEALTH_SECONDS``."""
    updated = to_datetime(health.get("updated_at"))
    if updated is None or health.get("running", True) is False:
        return False
    return (now - updated).total_seconds() <= FRESH_HEALTH_SECONDS


def counts(ws: Workspace, settings: Settings, now: datetime, health: dict[str, Any] | None = None) -> Counts:
    health = ws.read_state("health") if health is None else health
    overdue = due = active = 0
    for row in ws.jobs(active=True, limit=100_000):
        active += 1
        days = days_left(row.ship_by, now)
        if days is None:
            continue
        slack = by_name(settings.workflows, settings.default_workflow, row.workflow).due_slack_days
        if days < 0:
            overdue += 1
        elif days <= slack:
            due += 1
    queued = int(health.get("queue_length") or 0) if fresh_health(health, now) else None
    return Counts(active, overdue, due, queued)
