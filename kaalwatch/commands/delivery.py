"""``kaalwatch deliver``: build an order's files for Etsy."""

from __future__ import annotations

import click

from kaalwatch import delivery
from kaalwatch.cli import Context
from kaalwatch.delivery.limits import Check, human_size
from kaalwatch.errors import DeliveryError


def _mark(check: Check) -> str:
    return "ok" if check.ok else "NO"


def _show_plan(ctx: Context, receipt_id: int) -> None:
    """Before building: each promised file's final pixels, what the crop keeps, and the promises it misses."""
    ws, settings = ctx.workspace(), ctx.settings
    view = delivery.panel(ws, settings, ws.load(receipt_id))
    for addon in view.addons:
        click.echo(f"add-on: {addon.title}" + (f" ({addon.effect})" if addon.effect else ""))
    for check in view.job_checks:
        click.echo(f"{'✓' if check.ok else '✗'} {check.detail}")
    for plan in view.plans:
        frame = plan.frame
        fit = "margins" if frame.margins else f"keeps {frame.kept:.0%} of the art" if frame.axis else "as drawn"
        click.echo(f"job {plan.job_id} v{plan.version}: {plan.describe}: {frame.size[0]}x{frame.size[1]} px, {fit}")
        for check in plan.warnings:
            click.echo(f"  ✗ {check.detail}")


@click.command()
@click.argument("receipt_id", type=int)
@click.option("--anyway", is_flag=True,
              help="Build even though a promise is missed (pixels, DPI, crop, colour, quantity); recorded.")
@click.option("--confirm-manual", is_flag=True,
              help="You uploaded the files on Etsy and want them marked delivered now (recorded as manual).")
@click.pass_obj
def deliver(ctx: Context, receipt_id: int, anyway: bool, confirm_manual: bool) -> None:
    """Build RECEIPT_ID's files from the approved versions into its deliver/ folder, within Etsy's limits.

    Each promised file is checked first (pixels, DPI at the print size, how much a crop cuts, the colour
    profile, the quantity ordered); a missed promise is shown with ✗ and nothing is built unless --anyway.
    Upload the files on Etsy's order page; the next sync marks the jobs delivered when Etsy shows the order
    completed. With --confirm-manual, the ready jobs are marked delivered at once instead.
    """
    ws = ctx.workspace()
    settings = ctx.settings
    if confirm_manual:
        jobs = delivery.confirm_uploaded(ws, receipt_id, manual=True, actor="cli")
        click.echo(f"order {receipt_id}: job(s) {', '.join(jobs)} marked delivered (confirmed by hand)")
        return
    _show_plan(ctx, receipt_id)
    report = delivery.prepare(ws, settings, receipt_id, actor="cli", anyway=anyway)
    report.raise_for_problems()
    if report.held:
        for warning in report.warnings:
            click.echo(f"✗ {warning}", err=True)
        raise DeliveryError(f"order {receipt_id}: {len(report.warnings)} promise(s) not met; nothing built",
                            hint=f"fix the artwork or workflow, or run `kaalwatch deliver {receipt_id} --anyway`")
    _show_report(report)
    click.echo(f"folder:  {report.folder}")
    click.echo(f"upload:  {delivery.etsy_order_url(settings, receipt_id)}")
    click.echo(f"then:    wait for the next sync, or run `kaalwatch deliver {receipt_id} --confirm-manual`")


def _show_report(report: delivery.DeliveryReport) -> None:
    rows = [("file", "job", "from", "px", "size", "≤ size", "≤ name", "safe")]
    for item in report.files:
        size, length, safe = item.checks[:3]
        rows.append((item.name, item.job_id, f"v{item.from_version}", f"{item.width}x{item.height}",
                     human_size(item.size), _mark(size), _mark(length), _mark(safe)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for item in report.files:
        for step in item.steps + item.notes:
            click.echo(f"  {item.name}: {step}")
    for warning in report.warnings:
        click.echo(f"✗ delivered anyway: {warning}")
    if report.count is not None:
        click.echo(f"files per order: {report.count.detail} ({_mark(report.count)})")
    for name in report.removed:
        click.echo(f"removed stale file: {name}")
    for job_id, state in report.waiting.items():
        click.echo(f"job {job_id} is {state.replace('_', ' ')}: not included yet")
