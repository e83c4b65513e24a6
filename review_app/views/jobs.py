"""The landing page ("Today": jobs grouped by their next step) and the full list, read from the index alone.

Both read :meth:`Workspace.jobs`, whose rows carry each job's next step as the lifecycle decided it when
the manifest was written (:mod:`kaalwatch.steps`); only "overdue" depends on today and is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, render_template, request

from kaalwatch.index import JobRow
from kaalwatch.model import ACTIVE_STATES, JobState
from kaalwatch.overview import days_left
from kaalwatch.settings import Settings
from kaalwatch.steps import GROUPS, WORK_GROUPS
from kaalwatch.workflows import by_name
from review_app.runtime import runtime

bp = Blueprint("jobs", __name__)

MAX_SEARCH = 100
TODAY_PER_GROUP = 40  # more than this in one group links to the full list of that step


@dataclass(frozen=True)
class Line:
    row: JobRow
    days: int | None  # days left until ship-by (None: no date, or on hold — it does not count down)
    overdue: bool
    due: bool
    waiting: int | None  # days the buyer has been waited for


@dataclass
class OrderLines:
    """The lines of one order within a group: a multi-item order shows its items together, under it."""

    receipt_id: int
    buyer: str
    items: int
    lines: list[Line] = field(default_factory=list)


@dataclass
class Group:
    key: str
    title: str
    orders: list[OrderLines] = field(default_factory=list)
    count: int = 0


def _line(row: JobRow, now: datetime, settings: Settings) -> Line:
    live = row.state in ACTIVE_STATES and row.state is not JobState.ON_HOLD
    days = days_left(row.ship_by, now) if live else None
    grace = by_name(settings.workflows, settings.default_workflow, row.workflow).due_slack_days
    waiting = (now - row.since).days if row.step == "waiting" and row.since else None
    return Line(row=row, days=days, overdue=days is not None and days < 0,
                due=days is not None and days <= grace, waiting=waiting)


def _lines(rows: list[JobRow]) -> list[Line]:
    now, settings = datetime.now(UTC), runtime().settings
    return [_line(row, now, settings) for row in rows]


def _search_arg() -> str:
    return request.args.get("q", "")[:MAX_SEARCH].strip()


@bp.get("/")
def today() -> str:
    """Every active job under its next step, overdue work first, each group by ship-by date; then the orders
    Etsy has open that hold no job (add-ons paid apart), until Etsy says they are complete."""
    rows = runtime().ws.jobs(active=True, limit=100_000)
    groups = {key: Group(key, title) for key, title in GROUPS.items() if key != "done"}
    for line in _lines(rows):
        key = "overdue" if line.overdue and line.row.step in WORK_GROUPS else line.row.step
        group = groups.get(key)
        if group is None:
            continue
        group.count += 1
        if group.count > TODAY_PER_GROUP:
            continue
        last = group.orders[-1] if group.orders else None
        if last is None or last.receipt_id != line.row.receipt_id:
            last = OrderLines(line.row.receipt_id, line.row.buyer, line.row.items)
            group.orders.append(last)
        last.lines.append(line)
    return render_template("today.html", groups=[g for g in groups.values() if g.count],
                           total=len(rows), per_group=TODAY_PER_GROUP, broken=runtime().ws.broken_manifests()[:20],
                           jobless=runtime().ws.jobless())


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


@bp.get("/jobs")
def index() -> str:
    """The full list: filtered by state or next step, searched over every state unless a filter is chosen."""
    rt = runtime()
    search = _search_arg()
    # A search looks everywhere unless a state was chosen: a delivered order must be found by name.
    state = request.args.get("state") or ("all" if search else "active")
    step = request.args.get("step") or None
    if step is not None and step not in GROUPS:
        abort(404, f"no such step: {step[:40]}")
    page = max(1, min(request.args.get("page", 1, type=int), 100_000))
    states, active = _filter(state)
    size = int(current_app.config["KAALWATCH_PAGE_SIZE"])
    rows = rt.ws.jobs(states=states, active=active, search=search, steps={step} if step else None,
                      limit=size + 1, offset=(page - 1) * size)
    more = len(rows) > size
    counts = rt.ws.state_counts(search)
    totals = {
        "active": sum(n for s, n in counts.items() if s in ACTIVE_STATES),
        "all": sum(counts.values()),
        **{s.value: n for s, n in counts.items()},
    }
    elsewhere = totals["all"] - totals[state] if search and state != "all" else 0
    return render_template(
        "jobs.html", lines=_lines(rows[:size]), state=state, step=step, step_title=GROUPS.get(step or ""),
        search=search, page=page, more=more, totals=totals, elsewhere=elsewhere,
        filters=["active", *(s.value for s in JobState), "all"], broken=rt.ws.broken_manifests()[:20],
    )
