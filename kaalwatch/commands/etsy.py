"""``kaalwatch auth`` (connect the shop; ``auth status``) and ``kaalwatch sync`` (import orders once)."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import webbrowser
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from kaalwatch.cli import Context
from kaalwatch.errors import AuthError, EtsyError, GrantRevokedError
from kaalwatch.etsy.client import RUN_AUTH
from kaalwatch.model import iso, parse_time

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # the only module that names the type click.progressbar returns


@click.group(invoke_without_command=True)
@click.option("--no-browser", is_flag=True,
              help="Print the consent URL and read the URL you were sent to from standard input (SSH, scripts).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Loopback port of the callback (default: etsy.redirect_port; 0 = any free port).")
@click.option("--keystring", default=None, help="Your Etsy app's keystring (asked for when not configured).")
@click.option("--shared-secret", default=None, help="Your Etsy app's shared secret (asked for when not configured).")
@click.pass_context
def auth(click_ctx: click.Context, no_browser: bool, port: int | None, keystring: str | None,
         shared_secret: str | None) -> None:
    """Connect your Etsy shop (OAuth with PKCE); `auth status` shows the connection."""
    if click_ctx.invoked_subcommand is not None:
        return
    from kaalwatch.etsy.oauth import connect

    ctx: Context = click_ctx.obj
    settings = ctx.settings
    ws = ctx.workspace()
    etsy = settings.etsy
    if keystring or shared_secret or not etsy.keystring or not etsy.shared_secret:
        keystring = keystring or etsy.keystring or click.prompt("Etsy keystring", err=True)
        shared_secret = shared_secret or etsy.shared_secret or click.prompt(
            "Etsy shared secret", hide_input=True, err=True)
        path = ws.secrets.write_app_keys(keystring, shared_secret)
        click.echo(f"Saved the app credentials in {path} (mode 0600).", err=True)
        settings = dataclasses.replace(settings, etsy=dataclasses.replace(
            etsy, keystring=keystring, shared_secret=shared_secret))
    connection = connect(settings, ws, webbrowser.open, paste=no_browser, output=click.echo, port=port)
    click.echo(f"Connected to {connection.shop_name or 'your shop'} (shop {connection.shop_id}); "
               f"scopes: {' '.join(connection.scopes)}")


@auth.command("status")
@click.pass_obj
def status(ctx: Context) -> None:
    """Show the connected shop, its scopes, token expiry and the refresh token's age.

    Asks Etsy whether it still accepts the connection (refreshing an expired token, as any command would)
    and exits with code 9 when it does not, or when the last sync recorded a refusal and Etsy cannot be
    asked now.
    """
    from kaalwatch.etsy.client import EtsyClient
    from kaalwatch.etsy.ratelimit import describe_not_before
    from kaalwatch.etsy.tokens import TokenStore, describe
    from kaalwatch.sync import STATE

    ws = ctx.workspace()
    store = TokenStore(ws)
    if store.load() is None:
        raise AuthError("the Etsy shop is not connected", hint="run `kaalwatch auth`")
    refused: str | None = None
    with EtsyClient.from_settings(ctx.settings, ws) as client:
        try:
            client.get_me()
            live = "scopes (from Etsy now): " + " ".join(client.token_scopes(client.tokens().access_token))
        except GrantRevokedError as exc:  # other AuthErrors (not connected, no keystring) stop here as they are
            refused, live = exc.message, ""
        except AuthError:
            raise
        except EtsyError as exc:
            live = f"could not check with Etsy now: {exc}"
    tokens = store.load()  # again: the check may have refreshed the pair
    assert tokens is not None
    recorded = _recorded_refusal(ws.read_state(STATE), tokens.connected_at)
    if refused is None and recorded is not None and live.startswith("could not"):
        refused = recorded
    for line in describe(tokens, time.time(), refused=refused):
        click.echo(line)
    if live:
        click.echo(live)
    waiting = describe_not_before(ws.read_state(STATE))
    if waiting:
        click.echo(f"Etsy: {waiting}")
    if recorded is not None and refused is None:
        click.echo(f"note: {recorded}; Etsy accepts the connection now, so the next sync runs normally")
    if refused is not None:
        said = "Etsy no longer accepts this shop's connection" if not live else (
            "the last sync was refused by Etsy, and Etsy cannot be asked now")
        raise AuthError(said, hint="run `kaalwatch auth` to connect again")


def _recorded_refusal(state: Mapping[str, object], connected_at: float) -> str | None:
    """The refusal the last sync recorded (``needs_reauth``), unless the shop was connected again since."""
    if not state.get("needs_reauth"):
        return None
    at = parse_time(state.get("last_attempt"))
    if at is not None and connected_at > at.timestamp():
        return None
    when = f" at {iso(at)}" if at is not None else ""
    said = str(state.get("last_error") or "Etsy refused the connection").removesuffix(f" ({RUN_AUTH})")
    return f"the last sync{when} was refused ({said})"


@click.command()
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="First import: receipts created since this date (YYYY-MM-DD), with a progress bar.")
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
@click.option("--no-downloads", is_flag=True,
              help="Leave buyer photos and style samples to the daemon's download queue.")
@click.pass_obj
def sync(ctx: Context, since: datetime | None, dry_run: bool, no_downloads: bool) -> None:
    """Import and update orders from Etsy once, then fetch the reference files that are due."""
    from kaalwatch.download_queue import DownloadQueue
    from kaalwatch.etsy.client import EtsyClient
    from kaalwatch.sync import sync_once

    ws = ctx.workspace()
    bar = _LazyBar("Importing receipts") if since is not None and sys.stderr.isatty() else None
    with bar or contextlib.nullcontext(), EtsyClient.from_settings(ctx.settings, ws) as client:
        report = sync_once(ws, ctx.settings, client, since=since.replace(tzinfo=UTC) if since else None,
                           dry_run=dry_run, progress=bar)
    for line in report.changes:
        click.echo(line)
    for line in report.errors[:20]:
        click.echo(f"  error: {line}", err=True)
    if not dry_run and not no_downloads:  # downloads need no Etsy call: they run even after an early stop
        files = _LazyBar("Downloading references") if sys.stderr.isatty() else None
        with files or contextlib.nullcontext():
            click.echo(DownloadQueue(ws, ctx.settings).run(progress=files).summary())
    click.echo(report.summary())  # the last line, as scripts read it
    if report.exception is not None:
        raise report.exception


class _LazyBar(contextlib.AbstractContextManager["_LazyBar"]):
    """A click progress bar that appears once the total is known (the first page says it); closed on leaving."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: ProgressBar[int] | None = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
        self.bar.length = max(self.bar.length or 0, total)
        self.bar.update(done - self.done)
        self.done = done

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
