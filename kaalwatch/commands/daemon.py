"""``kaalwatch run``, ``demo``, ``doctor`` and ``service``: the long-running process and what surrounds it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from kaalwatch import service as svc  # the standard library only: cheap to import
from kaalwatch.cli import Context
from kaalwatch.errors import KaalwatchError

log = logging.getLogger(__name__)


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM (systemd, launchd, kill) and SIGINT (Ctrl+C) set the one stop event; a second one is ignored."""

    def handler(signum: int, _frame: object) -> None:
        if not stop.is_set():
            log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)


def _exit(code: int, busy: int) -> int:
    if busy:
        # A job outlived the grace period (an Etsy request stuck in its timeout). Its work is idempotent and
        # its writes atomic, so the next start finishes it; waiting here would break "exit within seconds".
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


@click.command()
@click.pass_obj
def run(ctx: Context) -> int:
    """Run the daemon in the foreground: sync, watch, previews, review page. Stop with Ctrl+C or SIGTERM."""
    from kaalwatch.daemon import Daemon

    ctx.workspace()  # checks the workspace and sets up logging to its log folder
    stop = threading.Event()
    install_stop_signals(stop)
    daemon = Daemon(ctx.settings)
    code = daemon.run(stop)
    return _exit(code, daemon.busy)


@click.command()
@click.option("--workspace", "workspace", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Demo workspace folder (default: a fresh kaalwatch-demo-… folder, printed).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the review page on 127.0.0.1 (0 picks a free one).")
@click.option("--no-browser", is_flag=True, help="Do not open the review page in a browser.")
@click.option("--orders-every", type=click.FloatRange(min=1), default=60.0, show_default=True, metavar="SECONDS",
              help="A new invented order arrives this often.")
@click.option("--hostile", is_flag=True,
              help="Invent hostile buyers (markup, path tricks, bidi marks) instead of a believable shop.")
def demo(workspace: Path | None, port: int, no_browser: bool, orders_every: float, hostile: bool) -> int:
    """Run everything against a built-in sandbox Etsy shop: no account, nothing to configure."""
    from kaalwatch.demo import interactive, run_demo

    stop = threading.Event()
    install_stop_signals(stop)
    return run_demo(stop, workspace=workspace, page_port=port, open_browser=not no_browser and interactive(),
                    orders_every=orders_every, out=click.echo, hostile=hostile)


@click.command()
@click.option("--offline", is_flag=True, help="Skip the check that contacts Etsy.")
@click.pass_obj
def doctor(ctx: Context, offline: bool) -> int:
    """Check the set-up; one line per check, with the fix when something is wrong."""
    from kaalwatch.doctor import run_checks

    checks = run_checks(ctx.config_path, skip_etsy=offline)
    for check in checks:
        click.echo(check.render())
    failed = [c for c in checks if not c.ok]
    click.echo(f"{len(failed)} problem(s) found." if failed else "All checks passed.")
    return 1 if failed else 0


@click.group()
def service() -> None:
    """Install kaalwatch as a per-user background service (systemd user unit, LaunchAgent, logon task)."""


def _spec(ctx: Context) -> svc.ServiceSpec:
    from kaalwatch.settings_sources import default_config_path

    config = ctx.config_path or (Path(os.environ["KAALWATCH_CONFIG"]) if os.environ.get("KAALWATCH_CONFIG")
                                 else default_config_path())
    if not config.exists():
        raise KaalwatchError(f"no config at {config}", hint="run `kaalwatch init` first")
    return svc.default_spec(config, ctx.settings.workspace)


@service.command("install")
@click.pass_obj
def service_install(ctx: Context) -> None:
    """Write and start the service for this user."""
    svc.install(_spec(ctx), out=click.echo)


@service.command("uninstall")
def service_uninstall() -> None:
    """Stop and remove the service."""
    svc.uninstall(out=click.echo)


@service.command("status")
def service_status() -> None:
    """Whether the service is installed and running."""
    click.echo(svc.status())
