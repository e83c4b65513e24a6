"""``kaalwatch init`` and ``kaalwatch status``: create a workspace, and see what is due."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import click

from kaalwatch import download_queue, overview, retention
from kaalwatch.cli import Context
from kaalwatch.errors import ConfigError, WorkspaceError
from kaalwatch.etsy.ratelimit import describe_not_before
from kaalwatch.index import JobRow
from kaalwatch.model import ERROR_SOURCES, JobState, utcnow
from kaalwatch.settings import Settings, render_default_config
from kaalwatch.settings_sources import default_config_path
from kaalwatch.steps import GROUPS
from kaalwatch.store import Workspace
from kaalwatch.workflows import by_name


@click.command()
@click.option("--workspace", "workspace_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Workspace folder to create (default: the configured one, ~/KaalOrders).")
@click.pass_obj
def init(ctx: Context, workspace_dir: Path | None) -> None:
    """Create a config file and an empty workspace. Refuses to overwrite an existing config."""
    config_path = ctx.config_path or default_config_path()
    if config_path.exists():
        raise ConfigError(f"{config_path} already exists", hint="edit it, or pass --config NEW_PATH")
    text = render_default_config()
    if workspace_dir is not None:
        workspace_dir = workspace_dir.expanduser().resolve()
        quoted = json.dumps(str(workspace_dir))  # JSON strings are valid YAML scalars
        text = re.sub(r"^workspace: .*?(  #.*)$", lambda m: f"workspace: {quoted}{m.group(1)}", text,
                      count=1, flags=re.M)
    try:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        with open(config_path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise ConfigError(f"{config_path} already exists") from None
    except OSError as exc:
        raise WorkspaceError(f"cannot write {config_path}: {exc.strerror}") from None
    ctx.config_path = config_path
    ws = Workspace(ctx.settings)
    ws.create()
    click.echo(f"config:    {config_path}")
    click.echo(f"workspace: {ws.root}")
    click.echo(f"orders:    {ws.orders_dir}  (save your artwork into the order folders here)")
    click.echo("next:      kaalwatch auth   (connect your Etsy shop), then kaalwatch run")


class JobWarning(TypedDict):
    source: str
    message: str


class JobSummary(TypedDict):
    """One line of `status` and one element of `status --json`'s ``jobs``."""

    receipt_id: int
    job_id: str
    listing: str
    state: str
    next: str
    marker: str | None
    ship_by: str | None
    days_left: int | None
    overdue: bool
    due: bool
    versions: int
    warnings: list[JobWarning]
    folder: str


def job_summary(row: JobRow, settings: Settings, now: datetime) -> JobSummary:
    """One job as plain data for the table and --json (days left, due and overdue flags)."""
    # An on-hold job does not count down: it is not late while the owner deliberately waits.
    days = None if row.state is JobState.ON_HOLD else overview.days_left(row.ship_by, now)
    slack = by_name(settings.workflows, settings.default_workflow, row.workflow).due_slack_days
    return {
        "receipt_id": row.receipt_id,
        "job_id": row.job_id,
        "listing": row.title,
        "state": row.state.value,
        "next": GROUPS.get(row.step, row.step),
        "marker": row.marker,
        "ship_by": row.ship_by.date().isoformat() if row.ship_by else None,
        "days_left": days,
        "overdue": days is not None and days < 0,
        "due": days is not None and days <= slack,
        "versions": row.versions,
        "warnings": [{"source": source, "message": message} for source, message in row.errors],
        "folder": row.folder,
    }


def daemon_line(health: Mapping[str, object], now: datetime) -> str:
    """One line about the daemon from its health file: running or not, watcher, queue, last sync."""
    if not health:
        return "daemon: not running (start it with `kaalwatch run` or `kaalwatch service install`)"
    if not (health.get("running", True) and overview.fresh_health(health, now)):
        when = health.get("updated_at") or "unknown"
        return f"daemon: not running (last seen {when}; start it with `kaalwatch run`)"
    alive = "alive" if health.get("watcher_alive") else "NOT running"
    result = f", last sync: {health['last_sync_result']}" if health.get("last_sync_result") else ""
    return (f"daemon: pid {health.get('pid')}, watcher {alive}, queue {health.get('queue_length', 0)}{result}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Include delivered and cancelled jobs.")
@click.pass_obj
def status(ctx: Context, as_json: bool, show_all: bool) -> None:
    """Active jobs by ship-by date (overdue first), the last sync and the daemon's health."""
    ws = ctx.workspace()
    report = ws.refresh_index()
    now = utcnow()
    rows = ws.jobs(active=None if show_all else True, limit=100_000)
    jobs = [job_summary(row, ctx.settings, now) for row in rows]
    health = ws.read_state("health")
    sync_state = ws.read_state("sync")
    broken = [{"folder": folder, "error": error} for folder, error in report.broken]
    numbers = overview.counts(ws, ctx.settings, now, health)  # the review page's header shows the same
    apart = ws.jobless()
    if as_json:  # the sync state carries Etsy's "not before" as epoch seconds
        paid_apart = [{"receipt_id": row.receipt_id, "addons": list(row.addons), "applied_to": row.addon_for}
                      for row in apart]
        click.echo(json.dumps({"jobs": jobs, "addons_paid_apart": paid_apart, "counts": dataclasses.asdict(numbers),
                               "health": health,
                               "sync": sync_state, "broken_manifests": broken,
                               "retention": ws.read_state("retention")}, indent=2, default=str))
        return
    if not jobs:
        click.echo("No active jobs." if not show_all else "No jobs.")
    else:
        click.echo(f"{'SHIP BY':<11} {'LEFT':>5}  {'RECEIPT':<12} {'STATE':<18} {'NEXT STEP':<21} {'VER':>3}  LISTING")
        for job in jobs:
            left = "" if job["days_left"] is None else f"{job['days_left']}d"
            mark = "!" if job["overdue"] else ("*" if job["due"] else " ")
            click.echo(
                f"{job['ship_by'] or '-':<11} {left:>5}{mark} {job['receipt_id']:<12} {job['state']:<18} "
                f"{job['next']:<21} {job['versions']:>3}  {job['listing'][:50]}"
            )
            if job["marker"]:
                click.echo(f"{'':<31}STOP: {job['marker']}")
            for warning in job["warnings"]:
                source = ERROR_SOURCES.get(warning["source"], warning["source"])
                click.echo(f"{'':<31}warning ({source}): {warning['message']}")
        click.echo("(! overdue, * due within the workflow's slack)")
    for row in apart:  # no job lists them: a Rush the buyer paid for in an order of its own
        where = ("no open order of this buyer here: ask them which order it is for" if row.addon_for is None
                 else f"applied to {row.addon_for}, which is delivered: complete it on Etsy now"
                 if row.addon_for_state is JobState.DELIVERED
                 else f"applied to {row.addon_for}, which was cancelled: refund it on Etsy"
                 if row.addon_for_state is JobState.CANCELLED
                 else f"applied to {row.addon_for}; complete it on Etsy when you deliver that order")
        click.echo(f"add-ons paid apart: {row.receipt_id} ({', '.join(row.addons) or 'no artwork'}) — {where}")
    last_sync = sync_state.get("last_success") or "never"
    last_error = f" — last error: {sync_state['last_error']}" if sync_state.get("last_error") else ""
    click.echo(f"jobs: {numbers.line()}" + ("" if numbers.queued is None else f" ({overview.QUEUED_MEANS})"))
    click.echo(f"last sync: {last_sync}{last_error}")
    waiting = describe_not_before(sync_state)
    if waiting:
        click.echo(f"Etsy: {waiting}")
    queued = download_queue.waiting(ws)
    if queued:
        click.echo(f"reference downloads: {queued} order(s) waiting (fetched by `kaalwatch run` or `kaalwatch sync`)")
    click.echo(daemon_line(health, now))
    if health.get("running") and health.get("sync_paused"):
        click.echo(f"sync paused: {health['sync_paused']}")
    for error in health.get("errors", [])[-5:] if health.get("running") else []:
        click.echo(f"recent error: {error}")
    for item in broken:
        click.echo(f"broken manifest: {item['error']}")
    for line in retention.status_lines(ws):
        click.echo(line)

