"""``kaalwatch set-password``: set the review page's password (stored as an argon2 hash, never in clear)."""

from __future__ import annotations

import sys

import click

from kaalwatch.cli import Context


@click.command("set-password")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the password from one line of standard input (for scripts) instead of prompting.")
@click.pass_obj
def set_password(ctx: Context, from_stdin: bool) -> None:
    """Set the review page's password; everyone logged in is logged out."""
    from review_app import security  # Flask loads only for this command, not for every `kaalwatch` call

    ws = ctx.workspace()
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat it")
    security.set_password(ws, password)
    click.echo(f"Password set ({ws.secrets.password_path}). Sessions started before now have ended.")
