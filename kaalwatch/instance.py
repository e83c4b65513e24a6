"""One daemon per workspace: the ``daemon.lock`` file lock, and the pid beside it that names the holder.

The lock is an OS file lock (``flock``/``LockFileEx``), so a killed daemon never leaves a stale lock: the
kernel releases it with the process. The pid file is only a label and may be stale; it is read only when
the lock is actually held by someone, or checked against a live process (:func:`lock_holder`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from kaalwatch.errors import WorkspaceError
from kaalwatch.store import Workspace

LOCK_NAME = "daemon.lock"
PID_NAME = "daemon.pid"


def _read_pid(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


@contextlib.contextmanager
def instance_lock(ws: Workspace) -> Iterator[None]:
    """Hold the workspace's daemon lock for the block; a second holder is refused, naming the first's pid."""
    lock = FileLock(str(ws.tool_dir / LOCK_NAME), timeout=0)
    pid_path = ws.tool_dir / PID_NAME
    try:
        lock.acquire()
    except Timeout:
        raise WorkspaceError(
            f"kaalwatch is already running on {ws.root} (pid {_read_pid(pid_path)})",
            hint="stop that process first, or use another workspace",
        ) from None
    try:
        try:
            pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError as exc:
            raise WorkspaceError(f"cannot write {pid_path}: {exc.strerror}",
                                 hint="check the workspace's permissions") from None
        yield
        with contextlib.suppress(OSError):
            if _read_pid(pid_path) == str(os.getpid()):
                pid_path.unlink()
    finally:
        lock.release()


def lock_holder(ws_root: Path) -> str | None:
    """The pid of a daemon running on this workspace, if its pid file names a live process (for ``doctor``)."""
    path = ws_root / ".kaalwatch" / PID_NAME
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return str(pid)
