"""``kaalwatch notify --test``: check that notifications reach the owner, before an order depends on it."""

from __future__ import annotations

import click

from kaalwatch.cli import Context
from kaalwatch.errors import ConfigError, KaalwatchError


@click.command()
@click.option("--test", "test", is_flag=True, help="Send one test notification to every notify.urls service.")
@click.pass_obj
def notify(ctx: Context, test: bool) -> None:
    """Notifications (new order, photos, cancellations, deliveries, ship-by, sync trouble) via apprise."""
    from kaalwatch import notify as notifications

    settings = ctx.settings.notify
    if not settings.urls:
        raise ConfigError("no notify.urls are configured, so nothing is sent",
                          hint="add apprise URLs under notify.urls in config.yaml (e.g. ntfy://your-topic)")
    kinds = ", ".join(kind for kind in notifications.KINDS if getattr(settings, kind)) or "none"
    if not test:
        click.echo(f"{len(settings.urls)} service(s) configured; kinds on: {kinds}. "
                   "`kaalwatch notify --test` sends a test notification.")
        return
    if not notifications.send_test(settings):
        raise KaalwatchError("the test notification was not delivered by every service",
                             hint="check notify.urls (see https://github.com/caronc/apprise/wiki) and the network")
    click.echo(f"Test notification sent to {len(settings.urls)} service(s). Kinds on: {kinds}.")
