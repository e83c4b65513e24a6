"""``kaalwatch purge`` and ``kaalwatch keep``: apply the retention promise now, or keep one order longer."""

from __future__ import annotations

from datetime import timedelta

import click

from kaalwatch import lifecycle, retention
from kaalwatch.cli import Context
from kaalwatch.model import utcnow

BYTES_PER_MB = 1_000_000


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be removed or anonymised; change nothing.")
@click.pass_obj
def purge(ctx: Context, dry_run: bool) -> None:
    """Delete buyer references and unused versions, and anonymise orders, past their retention time.

    Each order is checked again under its lock just before it is changed: one reopened, saved into or
    edited since the plan was made is left alone for the next run (and reported as such).
    """
    ws = ctx.workspace()
    report = retention.purge(ws, ctx.settings, now=utcnow(), dry_run=dry_run)
    verb = "would" if dry_run else "did"
    for order in report.orders:
        why = "finished" if order.basis == "finished" else "no activity"
        click.echo(f"order {order.receipt_id} ({why}; {order.bytes_freed / BYTES_PER_MB:.1f} MB):")
        for word, lines in (("delete", order.removed), ("remove", order.anonymised), ("change", order.renamed)):
            for line in lines:
                click.echo(f"  {verb} {word}   {line}")
    for receipt_id, why in sorted(report.skipped.items()):
        click.echo(f"order {receipt_id}: left alone ({why})")
    for receipt_id, when in sorted(report.warnings.items()):
        click.echo(f"order {receipt_id}: {when} (keep it with `kaalwatch keep {receipt_id} --days N --reason TEXT`)")
    for receipt_id, error in sorted(report.errors.items()):
        click.echo(f"order {receipt_id}: FAILED: {error}", err=True)
    if dry_run and report.orders:
        click.echo("(an order reopened, saved into or edited before the real run is left alone by it)")
    click.echo(report.summary())
    if report.errors:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("receipt_id", type=int)
@click.option("--days", type=click.IntRange(1, 3650), required=True,
              help="Keep the order's buyer data this many days from today.")
@click.option("--reason", required=True, help="Why (recorded in the order's history), e.g. 'chargeback dispute'.")
@click.pass_obj
def keep(ctx: Context, receipt_id: int, days: int, reason: str) -> None:
    """Keep RECEIPT_ID's buyer data past its retention date (an explicit choice, recorded with its reason)."""
    ws = ctx.workspace()
    until = utcnow() + timedelta(days=days)
    with ws.edit(receipt_id) as order:
        lifecycle.keep_until(order, until, reason, actor="cli")
    click.echo(f"order {receipt_id}: kept until {until:%Y-%m-%d}; retention leaves it alone until then")
