"""``kaalwatch deliver``: build an order's files for Etsy."""

from __future__ import annotations

import click

from kaalwatch import delivery
from kaalwatch.cli import Context
from kaalwatch.delivery.limits import BYTES_PER_MB, Check


def _mark(check: Check) -> str:
    return "ok" if check.ok else "NO"


@click.command()
@click.argument("receipt_id", type=int)
@click.option("--confirm-manual", is_flag=True,
              help="You uploaded the files on Etsy and want them marked delivered now (recorded as manual).")
@click.pass_obj
def deliver(ctx: Context, receipt_id: int, confirm_manual: bool) -> None:
    """Build RECEIPT_ID's files from the approved versions into its deliver/ folder, within Etsy's limits.

    Upload them on Etsy's order page; the next sync marks the jobs delivered when Etsy shows the order
    completed. With --confirm-manual, the ready jobs are marked delivered at once instead.
    """
    ws = ctx.workspace()
    settings = ctx.settings
    if confirm_manual:
        jobs = delivery.confirm_uploaded(ws, receipt_id, manual=True, actor="cli")
        click.echo(f"order {receipt_id}: job(s) {', '.join(jobs)} marked delivered (confirmed by hand)")
        return
    report = delivery.prepare(ws, settings, receipt_id, actor="cli")
    report.raise_for_problems()
    rows = [("file", "job", "from", "px", "size", "≤ size", "≤ name", "safe")]
    for item in report.files:
        size, length, safe = item.checks
        rows.append((item.name, item.job_id, f"v{item.from_version}", f"{item.width}x{item.height}",
                     f"{item.size / BYTES_PER_MB:.1f} MB", _mark(size), _mark(length), _mark(safe)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for item in report.files:
        for step in item.steps + item.notes:
            click.echo(f"  {item.name}: {step}")
    if report.count is not None:
        click.echo(f"files per order: {report.count.detail} ({_mark(report.count)})")
    for name in report.removed:
        click.echo(f"removed stale file: {name}")
    for job_id, state in report.waiting.items():
        click.echo(f"job {job_id} is {state.replace('_', ' ')}: not included yet")
    click.echo(f"folder:  {report.folder}")
    click.echo(f"upload:  {delivery.etsy_order_url(settings, receipt_id)}")
    click.echo(f"then:    wait for the next sync, or run `kaalwatch deliver {receipt_id} --confirm-manual`")
