"""``kaalwatch rescan`` and ``kaalwatch previews``: the watcher's work, once, without the daemon."""

from __future__ import annotations

import sys

import click

from kaalwatch.cli import Context


@click.command()
@click.argument("receipt_id", type=int, required=False)
@click.pass_obj
def rescan(ctx: Context, receipt_id: int | None) -> None:
    """Scan order folders (or one order) for saves the watcher missed, and turn them into versions."""
    from kaalwatch.watch import rescan_all, rescan_order

    ws = ctx.workspace()
    if receipt_id is not None:
        report = rescan_order(ws, ctx.settings, receipt_id)
    else:
        with click.progressbar(length=max(1, len(ws.receipt_ids())), label="scanning order folders",
                               file=sys.stderr) as bar:
            report = rescan_all(ws, ctx.settings, progress=bar.update)
    click.echo(report.summary())
    for error in report.errors:
        click.echo(f"  {error}", err=True)


@click.command()
@click.option("--rebuild", is_flag=True, help="Render every preview again (after changing the watermark).")
@click.argument("receipt_id", type=int, required=False)
@click.pass_obj
def previews(ctx: Context, rebuild: bool, receipt_id: int | None) -> None:
    """Render previews that are missing or were made with other settings (all of them with --rebuild)."""
    from kaalwatch.watch import rebuild_previews

    ws = ctx.workspace()
    total = 1 if receipt_id is not None else max(1, len(ws.receipt_ids()))
    with click.progressbar(length=total, label="checking previews", file=sys.stderr) as bar:
        rendered, errors = rebuild_previews(ws, ctx.settings, receipt_id, rebuild=rebuild, progress=bar.update)
    click.echo(f"{rendered} previews rendered, {len(errors)} failed")
    for error in errors:
        click.echo(f"  {error}", err=True)
