"""``kaalwatch sandbox``: run the local Etsy Open API v3 sandbox on loopback until interrupted."""

from __future__ import annotations

import threading
from pathlib import Path

import click


@click.command("sandbox")
@click.option("--port", type=int, default=0, show_default=True,
              help="TCP port on 127.0.0.1 (0 picks a free one).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Replay saved Etsy v3 responses (*.json files: pages, arrays or single bodies of "
                   "receipts, transactions, listings, images, personalization) as they are.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the generated shop data.")
@click.option("--keystring", default="sandbox-keystring", show_default=True,
              help="App keystring accepted in x-api-key and as client_id.")
@click.option("--shared-secret", default="sandbox-secret", show_default=True,
              help="App shared secret accepted in x-api-key.")
@click.option("--orders-every", type=click.FloatRange(min=0.1), default=None, metavar="SECONDS",
              help="Create a new paid order every SECONDS (for the demo).")
@click.option("--auto-approve", is_flag=True, help="Skip the consent page: redirect with a code at once.")
@click.option("--rate-per-second", type=click.IntRange(min=1), default=10, show_default=True,
              help="Per-token requests allowed per second.")
@click.option("--rate-per-day", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Per-token requests allowed per rolling 24 hours.")
@click.option("--receipts", type=click.IntRange(min=0), default=0, show_default=True,
              help="Generate this many extra receipts (large shops for benchmarks).")
@click.option("--hostile", is_flag=True,
              help="Seed hostile buyer text (markup, path tricks, bidi marks) and one receipt whose upload URLs "
                   "point off-sandbox (for testing escaping and the SSRF guard).")
@click.option("--verbose", is_flag=True, help="Log every request to stderr.")
def sandbox(port: int, data_dir: Path | None, seed: int, keystring: str, shared_secret: str,
            orders_every: float | None, auto_approve: bool, rate_per_second: int, rate_per_day: int,
            receipts: int, hostile: bool, verbose: bool) -> None:
    """Serve a local Etsy shop speaking Open API v3 on 127.0.0.1 (never the default Etsy)."""
    from kaalwatch.commands.daemon import install_stop_signals
    from kaalwatch.sandbox import Sandbox  # lazy: keeps `kaalwatch --help` fast

    # Ctrl+C, SIGTERM and SIGHUP stop it as they stop the daemon, even when it was started with SIGINT
    # ignored (a background job of a script), where Python raises no KeyboardInterrupt.
    stop = threading.Event()
    install_stop_signals(stop)
    sb = Sandbox(seed=seed, keystring=keystring, shared_secret=shared_secret, port=port,
                 rate_per_second=rate_per_second, rate_per_day=rate_per_day, auto_approve=auto_approve,
                 data_dir=data_dir, orders_every=orders_every, receipts=receipts, hostile=hostile,
                 verbose=verbose)
    try:
        sb.start()
    except OSError as err:  # port taken or not bindable: one actionable line, not a traceback
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err}") from None
    click.echo(f"Etsy sandbox listening at {sb.url}")
    click.echo(f"  keystring:     {sb.keystring}")
    click.echo(f"  shared secret: {sb.shared_secret}")
    click.echo(f"  x-api-key:     {sb.api_key}")
    click.echo(f"  shop_id {sb.shop_id}, user_id {sb.user_id}, {len(sb.receipt_ids)} receipts")
    click.echo(f"  consent page:  {sb.url}/oauth/connect   admin: {sb.url}/_sandbox")
    click.echo("Press Ctrl+C to stop.", err=True)
    try:
        stop.wait()
        click.echo("Stopping sandbox.", err=True)
    finally:
        sb.stop()
