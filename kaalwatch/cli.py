"""The ``kaalwatch`` command: a click group whose subcommands load lazily, and the one place that turns
expected errors into a one-line message and an exit code.

Subcommands live in ``kaalwatch/commands/<area>.py`` and are imported only when invoked, so ``kaalwatch
status`` does not pay for Pillow, Flask or the scheduler.
"""

from __future__ import annotations

import logging
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kaalwatch import __version__
from kaalwatch.errors import KaalwatchError

if TYPE_CHECKING:  # imported when used, so that `kaalwatch --help` stays fast
    from kaalwatch.settings import Settings
    from kaalwatch.store import Workspace

# name -> "module:attribute", in the order --help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("kaalwatch.commands.workspace:init", "Create a config file and an empty workspace."),
    "status": ("kaalwatch.commands.workspace:status", "Active jobs by ship-by date, and the daemon's health."),
    "demo": ("kaalwatch.commands.daemon:demo", "Run everything against a built-in sandbox Etsy shop."),
    "run": ("kaalwatch.commands.daemon:run", "Run the daemon: sync, watch, previews, review page."),
    "auth": ("kaalwatch.commands.etsy:auth", "Connect your Etsy shop (OAuth with PKCE)."),
    "sync": ("kaalwatch.commands.etsy:sync", "Import and update orders from Etsy once."),
    "rescan": ("kaalwatch.commands.watch:rescan", "Scan order folders for saves the watcher missed."),
    "previews": ("kaalwatch.commands.watch:previews", "Check or rebuild previews and thumbnails."),
    "deliver": ("kaalwatch.commands.delivery:deliver", "Build an approved job's files for Etsy's order page."),
    "purge": ("kaalwatch.commands.retention:purge", "Delete or anonymise buyer data past its retention time."),
    "keep": ("kaalwatch.commands.retention:keep", "Keep an order's buyer data longer, with a reason."),
    "set-password": ("kaalwatch.commands.review:set_password", "Set the review page's password."),
    "notify": ("kaalwatch.commands.notify:notify", "Check notifications: `notify --test` sends one."),
    "doctor": ("kaalwatch.commands.daemon:doctor", "Check the set-up and explain how to fix what is wrong."),
    "service": ("kaalwatch.commands.daemon:service", "Install kaalwatch as a per-user background service."),
    "sandbox": ("kaalwatch.commands.sandbox:sandbox", "Serve a local Etsy shop that speaks Etsy's API."),
}


@dataclass
class Context:
    """What every subcommand receives: the options of the group. Settings load on first use."""

    config_path: Path | None
    debug: bool
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from kaalwatch import private
            from kaalwatch.settings import load_settings

            settings = load_settings(self.config_path)
            private.configure(settings.private_files)  # before any command writes a file
            self._settings = settings
        return self._settings

    def workspace(self, *, check: bool = True) -> Workspace:
        """The workspace of the loaded settings, with logging to its log folder set up."""
        from kaalwatch import logs
        from kaalwatch.store import Workspace

        ws = Workspace(self.settings)
        if check:
            ws.check()
        logs.setup(self.settings.log_level, ws.logs_dir if check else None, debug=self.debug,
                   orders_dir=ws.orders_dir)
        return ws


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command = pkgutil.resolve_name(COMMANDS[cmd_name][0])
        if not isinstance(command, click.Command):  # a bug, not a user error
            raise TypeError(f"{COMMANDS[cmd_name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so --help does not import every subcommand.
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file (default: $KAALWATCH_CONFIG, else the platform's config folder).")
@click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks (secrets stay hidden).")
@click.version_option(__version__, prog_name="kaalwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """kaalwatch: Etsy orders into folders, every save a watermarked version, review and delivery."""
    ctx.obj = Context(config_path=config_path, debug=debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI and maps expected errors to one line on stderr and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="kaalwatch", standalone_mode=False)
    except KaalwatchError as exc:
        if debug:
            logging.getLogger("kaalwatch").exception("failed")
        click.echo(f"kaalwatch: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("kaalwatch: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("kaalwatch: interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            raise
        click.echo(f"kaalwatch: internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)",
                   err=True)
        return 70
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
