"""The home page: jobs by ship-by date, filtered by state and searched, read from the index alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, render_template, request

from kaalwatch.model import ACTIVE_STATES, JobState
from kaalwatch.store import JobRow
from kaalwatch.workflows import by_name
from review_app.filters import days_left
from review_app.runtime import runtime

bp = Blueprint("jobs", __name__)

MAX_SEARCH = 100


@dataclass(frozen=True)
class Line:
    row: JobRow
    days: int | None
    overdue: bool
    due: bool


def _filter(name: str) -> tuple[set[JobState] | None, bool | None]:
    """A filter name → (states, active) for ``Workspace.jobs``; unknown names are a 404, not a guess."""
    if name == "active":
        return None, True
    if name == "all":
        return None, None
    try:
        return {JobState(name)}, None
    except ValueError:
        abort(404, f"no such filter: {name[:40]}")


@bp.get("/")
def index() -> str:
    rt = runtime()
    state = request.args.get("state", "active")
    search = request.args.get("q", "")[:MAX_SEARCH].strip()
    try:
        page = max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    states, active = _filter(state)
    size = int(current_app.config["KAALWATCH_PAGE_SIZE"])
    rows = rt.ws.jobs(states=states, active=active, search=search, limit=size + 1, offset=(page - 1) * size)
    more = len(rows) > size
    counts = rt.ws.state_counts(search)
    totals = {
        "active": sum(n for s, n in counts.items() if s in ACTIVE_STATES),
        "all": sum(counts.values()),
        **{s.value: n for s, n in counts.items()},
    }
    now = datetime.now(UTC)
    slack = {w.name: w.due_slack_days for w in (*rt.settings.workflows, rt.settings.default_workflow)}
    lines = []
    for row in rows[:size]:
        days = days_left(row.ship_by, now)
        grace = slack.get(row.workflow)
        if grace is None:
            grace = by_name(rt.settings.workflows, rt.settings.default_workflow, row.workflow).due_slack_days
        live = row.state in ACTIVE_STATES
        lines.append(Line(row=row, days=days, overdue=live and days is not None and days < 0,
                          due=live and days is not None and days <= grace))
    return render_template(
        "jobs.html", lines=lines, state=state, search=search, page=page, more=more, totals=totals,
        filters=["active", *(s.value for s in JobState), "all"], broken=rt.ws.broken_manifests()[:20],
    )
