"""How the daemon's parts fail and recover: the backoff of a failing job, and the health record the
heartbeat writes to ``state/health.json`` (shown by the page and ``status``)."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from kaalwatch.model import iso, utcnow

log = logging.getLogger(__name__)

MAX_ERRORS = 20
# Longest pause between sync attempts while Etsy keeps failing: long enough not to hammer an outage,
# short enough that orders appear within the hour after it ends.
MAX_SYNC_BACKOFF_SECONDS = 3600.0


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none), for logs and health."""
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else exc.__class__.__name__


@dataclass
class Backoff:
    """Skip scheduled runs exponentially after failures: 0, 1, 3, 7 … runs, capped at ``max_skip``.

    Counting runs rather than comparing clocks keeps it immune to the scheduler's jitter: the first retry
    is always the very next run.
    """

    max_skip: int
    failures: int = 0
    skip: int = 0

    @classmethod
    def for_interval(cls, interval_seconds: float, max_delay: float = MAX_SYNC_BACKOFF_SECONDS) -> Backoff:
        return cls(max_skip=max(0, int(max_delay // max(interval_seconds, 1e-3)) - 1))

    def should_run(self) -> bool:
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def failed(self) -> int:
        """Record a failure; returns how many runs will be skipped before the next attempt."""
        self.failures += 1
        self.skip = min(2 ** (self.failures - 1) - 1, self.max_skip)
        return self.skip

    def succeeded(self) -> None:
        self.failures = 0
        self.skip = 0


class Snapshot(TypedDict):
    last_sync: str | None
    last_sync_result: str | None
    sync_paused: str | None
    errors: list[str]
    failing: list[str]
    review_url: str | None


@dataclass
class Health:
    """What the heartbeat writes to ``state/health.json``: shared by jobs, so every change takes the lock."""

    errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=MAX_ERRORS))
    last_sync: str | None = None
    last_sync_result: str | None = None
    sync_paused: str | None = None
    review_url: str | None = None
    _last_by_part: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, part: str, message: str) -> None:
        """Log a part's failure and remember it; the same message again from the same part is not repeated."""
        line = message.splitlines()[0] if message else "failed"
        with self._lock:
            if self._last_by_part.get(part) == line:
                return
            self._last_by_part[part] = line
            self.errors.append(f"{utcnow().strftime('%Y-%m-%d %H:%M:%S')} {part}: {line}")
        log.error("%s: %s", part, line)

    def recovered(self, part: str) -> None:
        with self._lock:
            if self._last_by_part.pop(part, None) is not None:
                log.info("%s: working again", part)

    def sync_done(self, result: str) -> None:
        with self._lock:
            self.last_sync = iso(utcnow())
            self.last_sync_result = result

    def snapshot(self) -> Snapshot:
        with self._lock:
            return {
                "last_sync": self.last_sync,
                "last_sync_result": self.last_sync_result,
                "sync_paused": self.sync_paused,
                "errors": list(self.errors),
                "failing": sorted(self._last_by_part),
                "review_url": self.review_url,
            }


def guard(health: Health, part: str, fn: Callable[[], object], *, mark_recovered: bool = True) -> bool:
    """Run one part's step; a failure is logged and shown, never raised into the others."""
    try:
        fn()
    except Exception as exc:
        health.error(part, one_line(exc))
        log.debug("%s failed", part, exc_info=True)
        return False
    if mark_recovered:
        health.recovered(part)
    return True
