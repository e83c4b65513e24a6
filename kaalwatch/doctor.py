"""``kaalwatch doctor``: check the set-up and say, one line each, what is wrong and how to fix it.

Each check is a small function returning a :class:`Check`; the inputs that come from the system (mount
table, inotify limit, disk usage) can be passed in, so the logic is tested without a special machine.
A check never raises: an unexpected failure becomes a failed check naming the exception.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kaalwatch.errors import KaalwatchError
from kaalwatch.fsprobe import filesystem_type, is_network
from kaalwatch.settings import Settings

LOW_DISK_BYTES = 2 * 1024**3
MIN_DISK_BYTES = 200 * 1024**2


@dataclass(frozen=True)
class Check:
    """One finding: ``ok`` (warnings are ok but flagged), the line to show, and the fix when not fine."""

    name: str
    ok: bool
    line: str
    fix: str = ""
    warning: bool = False

    def render(self) -> str:
        mark = "ok  " if self.ok and not self.warning else ("warn" if self.ok else "FAIL")
        return f"[{mark}] {self.name}: {self.line}" + (f" — fix: {self.fix}" if self.fix else "")


def _safe(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except KaalwatchError as exc:
        return Check(name, False, exc.message, exc.hint or "")
    except Exception as exc:
        return Check(name, False, f"check failed: {exc.__class__.__name__}: {exc}", "run with --debug and report it")


# --------------------------------------------------------------------------------------------------
# The checks


def check_workspace(settings: Settings) -> Check:
    from kaalwatch.store import Workspace

    ws = Workspace(settings)
    try:
        ws.check()
    except KaalwatchError as exc:
        return Check("workspace", False, exc.message, exc.hint or "run `kaalwatch init`")
    return Check("workspace", True, f"{ws.root} exists and is writable")


def check_filesystem(settings: Settings, fstype: str | None = None) -> Check:
    path = settings.workspace if settings.workspace.exists() else settings.workspace.parent
    fstype = fstype if fstype is not None else filesystem_type(path)
    if fstype is None:
        return Check("filesystem", True, "type unknown on this system (assumed local)")
    if is_network(fstype):
        if settings.watcher.backend == "polling":
            return Check("filesystem", True, f"network filesystem ({fstype}); watcher polls, as it should")
        return Check("filesystem", True, f"network filesystem ({fstype}): change events from other machines are missed",
                     "set watcher.backend: polling in the config", warning=True)
    return Check("filesystem", True, f"local filesystem ({fstype})")


def count_folders(root: Path) -> int:
    total = 0
    for _dirpath, dirnames, _files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        total += len(dirnames)
    return total + 1


def check_inotify(settings: Settings, limit: int | None = None, folders: int | None = None) -> Check:
    if settings.watcher.backend == "polling":
        return Check("inotify", True, "not used (watcher.backend is polling)")
    if limit is None:
        try:
            limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip())
        except (OSError, ValueError):
            return Check("inotify", True, "not a Linux inotify system; nothing to check")
    if folders is None:
        folders = count_folders(settings.orders_dir) if settings.orders_dir.is_dir() else 0
    # One watch per folder; the limit is shared with every other program of the user (editors, sync clients).
    if folders >= limit:
        return Check("inotify", False, f"{folders} folders but only {limit} inotify watches allowed",
                     "sudo sysctl fs.inotify.max_user_watches=524288 (and in /etc/sysctl.d), "
                     "or set watcher.backend: polling")
    if folders * 2 > limit:
        return Check("inotify", True, f"{folders} folders use more than half of the {limit} inotify watches",
                     "sudo sysctl fs.inotify.max_user_watches=524288", warning=True)
    return Check("inotify", True, f"{folders} folders, limit {limit} watches")


def check_etsy(settings: Settings) -> Check:
    from kaalwatch.etsy.client import EtsyClient
    from kaalwatch.store import Workspace

    ws = Workspace(settings)
    try:
        with EtsyClient.from_settings(settings, ws) as client:
            shop = client.get_me().get("shop_id")
            scopes = set(client.token_scopes())
    finally:
        ws.close()
    wanted = set(settings.etsy.scopes) | ({"transactions_w"} if settings.delivery.create_shipment else set())
    if scopes and not wanted <= scopes:
        missing = ", ".join(sorted(wanted - scopes))
        return Check("etsy", False, f"connected to shop {shop}, but the token lacks {missing}",
                     "run `kaalwatch auth` again to grant them")
    granted = f" (scopes: {', '.join(sorted(scopes))})" if scopes else ""
    return Check("etsy", True, f"{settings.etsy.base_url} reachable, token valid for shop {shop}{granted}")


def check_port(settings: Settings, daemon_pid: str | None = None) -> Check:
    host, port = settings.review.host, settings.review.port
    if port == 0:
        return Check("review port", True, "0: a free port is chosen at start")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if daemon_pid and exc.errno == errno.EADDRINUSE:
                return Check("review port", True, f"{host}:{port} is served by the running daemon (pid {daemon_pid})")
            reason = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            return Check("review port", False, f"{host}:{port} {reason}",
                         "stop what uses it, or set review.port to another port")
    return Check("review port", True, f"{host}:{port} is free")


def check_fonts(settings: Settings) -> Check:
    from PIL import ImageFont

    font = settings.watermark.font or str(Path(__file__).parent / "fonts" / "DejaVuSans.ttf")
    try:
        ImageFont.truetype(font, 24)
    except OSError:
        return Check("fonts", False, f"cannot load the watermark font {font}",
                     "set watermark.font to a TrueType file, or reinstall kaalwatch")
    return Check("fonts", True, f"watermark font {Path(font).name} loads")


def check_disk(settings: Settings, free: int | None = None) -> Check:
    if free is None:
        path = settings.workspace if settings.workspace.exists() else settings.workspace.parent
        free = shutil.disk_usage(path).free
    gib = free / 1024**3
    if free < MIN_DISK_BYTES:
        return Check("disk", False, f"only {gib:.2f} GB free", "free some space; versions and previews need room")
    if free < LOW_DISK_BYTES:
        return Check("disk", True, f"{gib:.1f} GB free", "free some space soon", warning=True)
    return Check("disk", True, f"{gib:.1f} GB free")


def loose_modes(root: Path) -> tuple[int, int]:
    """How many files and folders under ``root`` give group or others more than the private modes allow
    (symlinks are not followed and not counted)."""
    from kaalwatch import private

    files = folders = 0
    for top, dirs, names in os.walk(root, followlinks=False):
        for name in dirs:
            st = os.lstat(os.path.join(top, name))
            folders += private.too_open(st.st_mode, True) and not stat.S_ISLNK(st.st_mode)
        for name in names:
            st = os.lstat(os.path.join(top, name))
            files += private.too_open(st.st_mode, False) and stat.S_ISREG(st.st_mode)
    folders += private.too_open(os.lstat(root).st_mode, True)
    return files, folders


def check_modes(settings: Settings) -> Check:
    """Buyer data readable by other local accounts (an old workspace, or files copied in by hand)."""
    if not settings.private_files:
        return Check("file modes", True, "private_files is off: modes follow the umask", warning=True)
    root = settings.workspace
    if not root.is_dir():
        return Check("file modes", True, "no workspace yet")
    files, folders = loose_modes(root)
    if files or folders:
        return Check("file modes", False,
                     f"{files} file(s) and {folders} folder(s) with buyer data are readable by other accounts",
                     f"chmod -R go-rwx '{root}'")
    return Check("file modes", True, "buyer data is private to this account (files 0600, folders 0700)")


def run_checks(config_path: Path | None, *, skip_etsy: bool = False) -> list[Check]:
    """Every check in order; the ones needing settings are skipped when the config does not load."""
    from kaalwatch.instance import lock_holder
    from kaalwatch.settings import load_settings

    try:
        settings = load_settings(config_path)
    except KaalwatchError as exc:
        return [Check("config", False, exc.message, exc.hint or "fix the config file, see config.yaml")]
    checks = [Check("config", True, "settings load and validate")]
    checks.append(_safe("workspace", lambda: check_workspace(settings)))
    checks.append(_safe("filesystem", lambda: check_filesystem(settings)))
    checks.append(_safe("inotify", lambda: check_inotify(settings)))
    if not skip_etsy:
        checks.append(_safe("etsy", lambda: check_etsy(settings)))
    checks.append(_safe("review port", lambda: check_port(settings, lock_holder(settings.workspace))))
    checks.append(_safe("fonts", lambda: check_fonts(settings)))
    checks.append(_safe("disk", lambda: check_disk(settings)))
    checks.append(_safe("file modes", lambda: check_modes(settings)))
    return checks
