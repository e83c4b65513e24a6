"""``kaalwatch demo``: the whole tool against a built-in sandbox Etsy shop, with nothing configured.

What it does, in order: start :class:`~kaalwatch.sandbox.Sandbox` on a free loopback port (consent page
auto-approved, a new paid order every ``orders_every`` seconds); create a fresh demo workspace named
``kaalwatch-demo-<time>`` under the user's data folder (or use ``--workspace``, which must be empty or an
earlier demo workspace, so a real workspace is never touched); write that workspace its own
``demo-config.yaml`` pointing ``etsy.base_url`` at the sandbox with short intervals; connect through the
real OAuth flow; then run the :class:`~kaalwatch.daemon.Daemon` until SIGINT/SIGTERM and stop the sandbox.

Password choice: the demo's review page listens on 127.0.0.1 only and runs with
``review.require_password: false`` — there is nothing private in it (the sandbox's buyers are invented),
and a newcomer should see the page at once. A real workspace keeps the default (password required).

The demo reads no user config and no ``KAALWATCH_*`` environment variables, so it can never reach the
real Etsy or a real workspace by accident.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from kaalwatch.errors import WorkspaceError
from kaalwatch.settings import load_settings

log = logging.getLogger(__name__)

MARKER = ".kaalwatch-demo"
CONFIG_NAME = "demo-config.yaml"
DEFAULT_ORDERS_EVERY = 60.0


def default_demo_root() -> Path:
    import platformdirs

    base = Path(platformdirs.user_data_dir("kaalwatch", appauthor=False))
    return base / f"kaalwatch-demo-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def prepare_workspace(root: Path | None) -> Path:
    """A demo workspace folder: fresh by default; an explicit one must be empty or an earlier demo's."""
    if root is None:
        root = default_demo_root()
        suffix = 1
        while root.exists():  # two demos started within the same second
            root = root.with_name(f"{root.name.split('~')[0]}~{suffix}")
            suffix += 1
    root = root.expanduser().resolve()
    if root.exists():
        if not root.is_dir():
            raise WorkspaceError(f"{root} is a file", hint="pass --workspace with a folder")
        if any(root.iterdir()) and not (root / MARKER).exists():
            raise WorkspaceError(f"{root} is not empty and is not a demo workspace",
                                 hint="pass --workspace with a new or empty folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("This folder was made by `kaalwatch demo`; it holds invented orders only.\n",
                                   encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(f"cannot create {root}: {exc.strerror}", hint="pass --workspace DIR") from None
    return root


def demo_config(root: Path, sandbox_url: str, keystring: str, shared_secret: str, *,
                page_port: int) -> dict[str, object]:
    """The demo workspace's settings: sandbox Etsy, short intervals, loopback page without a password."""
    return {
        "workspace": str(root),
        "shop_name": "Kaal Digital (demo)",
        "etsy": {
            "base_url": sandbox_url,
            "keystring": keystring,
            "shared_secret": shared_secret,
            "scopes": ["transactions_r", "transactions_w", "shops_r", "listings_r"],
            "max_retries": 1,
            "timeout_seconds": 5.0,
        },
        "sync": {"interval_minutes": 0.25},
        "watcher": {"quiet_seconds": 1.0, "poll_interval_seconds": 1.0, "rescan_minutes": 1.0, "workers": 1},
        "review": {"host": "127.0.0.1", "port": page_port, "require_password": False},
    }


def write_config(root: Path, data: Mapping[str, object]) -> Path:
    path = root / CONFIG_NAME
    # JSON is valid YAML: the file stays readable and editable, and no YAML emitter quirks apply.
    path.write_text("# written by `kaalwatch demo`; delete the folder when done\n" + json.dumps(data, indent=2)
                    + "\n", encoding="utf-8")
    return path


def cli_hint(config_path: Path) -> str:
    """The exact line that points the command line (``kaalwatch status`` …) at this demo's workspace."""
    if os.name == "nt":
        return f'$env:KAALWATCH_CONFIG = "{config_path}"'  # PowerShell, the default Windows terminal
    return f"export KAALWATCH_CONFIG={shlex.quote(str(config_path))}"


def _watch_first_folder(orders_dir: Path, started: float, stop: threading.Event, out: Callable[[str], None]) -> None:
    """Say when the first order folder appears, in seconds from start (the newcomer's one-minute promise)."""
    while not stop.wait(0.25):
        try:
            if any(p.is_dir() for p in orders_dir.iterdir()):
                out(f"First order folder after {time.monotonic() - started:.1f} s — save a PNG into one of them.")
                return
        except OSError:
            continue


def run_demo(stop: threading.Event, *, workspace: Path | None = None, page_port: int = 0,
             open_browser: bool = True, orders_every: float = DEFAULT_ORDERS_EVERY,
             out: Callable[[str], None] = print, tick_seconds: float = 2.0, hostile: bool = False) -> int:
    """Start the sandbox, set up the demo workspace, connect, run the daemon until ``stop``; returns 0."""
    import requests

    from kaalwatch import logs
    from kaalwatch.daemon import Daemon
    from kaalwatch.etsy import oauth
    from kaalwatch.sandbox import Sandbox
    from kaalwatch.store import Workspace

    started = time.monotonic()
    root = prepare_workspace(workspace)
    sandbox = Sandbox(auto_approve=True, orders_every=orders_every or None, hostile=hostile)
    sandbox.start()
    try:
        config_path = write_config(root, demo_config(root, sandbox.url, sandbox.keystring, sandbox.shared_secret,
                                                     page_port=page_port))
        settings = load_settings(config_path, env={}, use_default_path=False)
        ws = Workspace(settings)
        ws.create()
        logs.setup(settings.log_level, ws.logs_dir, orders_dir=ws.orders_dir)
        out(f"Sandbox Etsy shop at {sandbox.url} (invented orders; a new one every {orders_every:g} s)")
        out(f"Demo workspace: {root}  (config: {config_path})")
        out("To use the command line with this demo (kaalwatch status, rescan, …), in another terminal run:")
        out(f"  {cli_hint(config_path)}")
        # The real PKCE flow; the sandbox's consent page approves at once, so "the browser" is one GET.
        oauth.connect(settings, ws, open_url=lambda url: requests.get(url, timeout=10), output=lambda _line: None,
                      port=0)
        ws.close()

        def ready(url: str | None) -> None:
            out(f"Review page:  {url or '(not available, see the log)'}")
            out(f"Save artwork into the order folders in: {ws.orders_dir}")
            out(f"Ready after {time.monotonic() - started:.1f} s. Press Ctrl+C to stop.")
            threading.Thread(target=_watch_first_folder, args=(ws.orders_dir, started, stop, out),
                             name="demo-first-folder", daemon=True).start()
            if url and open_browser:
                webbrowser.open(url)

        return Daemon(settings, tick_seconds=tick_seconds, on_ready=ready).run(stop)
    finally:
        sandbox.stop()


def interactive() -> bool:
    """A person at a terminal (a browser may be opened for them)."""
    return sys.stdin.isatty() and sys.stdout.isatty()
