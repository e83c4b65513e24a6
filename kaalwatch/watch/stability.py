"""Decide when a saved file has stopped changing: the pure clock-and-stat part of "the file is complete".

The tracker does no decoding and no manifest work; whether the bytes decode is checked by the ingest step
(a file that fails is simply touched again by its next event or rescan).
"""

from __future__ import annotations

import os
import stat as stat_module
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kaalwatch.imaging.complete import rule_for
from kaalwatch.settings import Settings

#: macOS marks iCloud "dataless" files (a size, but no bytes on disk yet) with this st_flags bit.
SF_DATALESS = 0x40000000


def is_placeholder(st: os.stat_result) -> bool:
    """A cloud placeholder reports a size but holds no data yet; reading it would block or fetch.

    macOS sets SF_DATALESS; elsewhere a non-empty file with no allocated blocks is the same thing
    (a sync client's sparse placeholder, a file preallocated by ``truncate`` and not yet written).
    """
    if sys.platform == "darwin":
        return bool(getattr(st, "st_flags", 0) & SF_DATALESS)
    blocks = getattr(st, "st_blocks", None)
    return blocks is not None and st.st_size > 0 and blocks == 0


@dataclass
class _Pending:
    last_event: float
    size: int | None
    mtime_ns: int | None
    quiet: float


Stat = Callable[[Path], os.stat_result]
#: A stable file and the (size, mtime_ns) it kept for its whole quiet period.
Signature = tuple[int, int]


class StabilityTracker:
    """Files seen changing, and which of them have been quiet long enough to be read.

    Edge cases handled:
    - a new event restarts the clock (``touch``);
    - size or mtime different at the deadline from the last look (a writer that emits no events, such as
      a network share or a polling backend between scans) restarts the clock too;
    - a path gone at the deadline (deleted before it became stable, renamed away) is dropped silently;
    - a path that is now a folder, a symlink, a FIFO or a socket is dropped (only regular files count);
    - a cloud placeholder (reports a size, holds no data) waits, re-checked every quiet period;
    - a 0-byte file is dropped: tools create the file, then write it, and that write is an event (or
      found by the next rescan);
    - a scan (``scanned=True``) may count the quiet period from the file's own last change, read by the
      tracker's own ``stat`` at that moment (the later of mtime and ctime: a rename, ``cp -p`` or
      ``rsync -t`` set an old mtime but a fresh ctime), and never shortens a clock already running;
    - formats that cannot be decoded wait longer (``quiet_for``), since no decode can catch a torn file.
    Nothing is ever given up for good: ``touch`` re-arms any path at any time.

    Not thread-safe: one thread owns it (the watcher's coordinator). The clock is injected (``now``).
    """

    def __init__(self, quiet_seconds: float, stat: Stat = os.lstat,
                 placeholder: Callable[[os.stat_result], bool] = is_placeholder,
                 quiet_for: Callable[[Path], float] | None = None, wall: Callable[[], float] = time.time) -> None:
        self.quiet = float(quiet_seconds)
        self._stat = stat
        self._placeholder = placeholder
        self._quiet_for = quiet_for
        self._wall = wall
        self._pending: dict[Path, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def _look(self, path: Path) -> os.stat_result | None:
        try:
            return self._stat(path)
        except OSError:
            return None

    def touch(self, path: Path, now: float, *, quiet_since: float | None = None, scanned: bool = False) -> None:
        """Something happened to ``path`` at ``now``: (re)start its quiet period.

        ``scanned`` says a scan found it (not an event): the file has been quiet since its last change
        (mtime or ctime, whichever is later, from this very ``stat``), so a file untouched for an hour is
        due without waiting another quiet period. ``quiet_since`` gives that moment on the tracker's clock
        directly. Neither ever shortens a quiet period already running.
        """
        st = self._look(path)
        start = now
        if st is not None and scanned:
            changed = max(st.st_mtime, st.st_ctime)
            quiet_since = now - max(0.0, self._wall() - changed)
        if quiet_since is not None:
            start = min(now, quiet_since)
            pending = self._pending.get(path)
            if pending is not None:
                start = max(start, pending.last_event)
        quiet = self._quiet_for(path) if self._quiet_for is not None else self.quiet
        self._pending[path] = _Pending(start, st.st_size if st else None, st.st_mtime_ns if st else None, quiet)

    def forget(self, path: Path) -> None:
        self._pending.pop(path, None)

    def next_deadline(self) -> float | None:
        """When the earliest pending file may become due (for the caller's wait), or None."""
        if not self._pending:
            return None
        return min(p.last_event + p.quiet for p in self._pending.values())

    def due(self, now: float) -> list[Path]:
        """Pop and return every path that has been quiet and unchanged for the quiet period."""
        return [path for path, _sig in self.due_signed(now)]

    def due_signed(self, now: float) -> list[tuple[Path, Signature]]:
        """``due``, with the (size, mtime_ns) each file kept while quiet: the ingest copies only those bytes."""
        ready: list[tuple[Path, Signature]] = []
        for path, entry in list(self._pending.items()):
            if now - entry.last_event < entry.quiet:
                continue
            st = self._look(path)
            if st is None or not stat_module.S_ISREG(st.st_mode):
                del self._pending[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
                # Changed without an event reaching us: the quiet period starts again from this look.
                self._pending[path] = _Pending(now, st.st_size, st.st_mtime_ns, entry.quiet)
                continue
            if st.st_size == 0:
                del self._pending[path]
                continue
            if self._placeholder(st):
                entry.last_event = now  # look again one quiet period later, never read it meanwhile
                continue
            del self._pending[path]
            ready.append((path, (st.st_size, st.st_mtime_ns)))
        return ready


def quiet_for(settings: Settings) -> Callable[[Path], float]:
    """The quiet period of a path: longer for formats kaalwatch cannot decode (see ``imaging.complete``)."""
    quiet, closed = settings.watcher.quiet_seconds, max(settings.watcher.quiet_seconds,
                                                        settings.watcher.closed_quiet_seconds)
    return lambda path: quiet if rule_for(path).decoded else closed
