"""Client-side pacing of Etsy calls: stay under the per-second and per-day budgets before Etsy says 429."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from kaalwatch.errors import EtsyRateLimitError
from kaalwatch.store import Workspace

DAY = 86_400.0


class RateLimiter:
    """A sliding one-second window (never more than ``per_second`` sends in any second) and a rolling day.

    Etsy's own counters, read from the ``x-remaining-*`` headers of each answer, tighten the local view:
    another process using the same token spends the same budget. ``clock`` and ``sleep`` are injectable
    so tests never wait in real time.
    """

    def __init__(self, per_second: float, per_day: int, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_second = max(1, int(per_second))
        # Below one request a second the window is longer than a second.
        self.window = 1.0 if per_second >= 1 else 1.0 / per_second
        self.per_day = per_day
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._day: deque[float] = deque()
        self._not_before = 0.0
        self._day_exhausted_until: float | None = None

    def acquire(self) -> None:
        """Block until one more request fits both budgets; raise when the daily budget is spent."""
        with self._lock:
            while True:
                now = self.clock()
                while self._recent and self._recent[0] <= now - self.window:
                    self._recent.popleft()
                while self._day and self._day[0] <= now - DAY:
                    self._day.popleft()
                if self._day_exhausted_until is not None and now < self._day_exhausted_until:
                    raise EtsyRateLimitError(
                        "Etsy's daily request budget is used up", hint=retry_hint(self._day_exhausted_until - now),
                        retry_at=time.time() + (self._day_exhausted_until - now))
                if len(self._day) >= self.per_day:
                    wait = self._day[0] + DAY - now
                    raise EtsyRateLimitError(f"the configured budget of {self.per_day} Etsy calls a day is used up",
                                             hint=retry_hint(wait), retry_at=time.time() + wait)
                wait = self._not_before - now
                if len(self._recent) >= self.per_second:
                    wait = max(wait, self._recent[0] + self.window - now)
                if wait <= 1e-6:
                    self._recent.append(now)
                    self._day.append(now)
                    return
                self.sleep(wait)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read Etsy's remaining budgets from an answer's headers."""
        second = _int(headers.get("x-remaining-this-second"))
        today = _int(headers.get("x-remaining-today"))
        now = self.clock()
        with self._lock:
            if second is not None and second <= 0:
                self._not_before = max(self._not_before, now + self.window)
            if today is not None and today <= 0:
                self._day_exhausted_until = now + DAY

    def day_exhausted(self, seconds: float) -> None:
        with self._lock:
            self._day_exhausted_until = self.clock() + seconds


SYNC_STATE = "sync"
NOT_BEFORE_KEYS = ("not_before", "not_before_reason")


class NotBefore:
    """Etsy's "not before" time (a daily-limit 429, a long ``retry-after``), kept in ``state/sync.json``.

    It used to live only in the client object, which the daemon throws away after a failed sync, so the
    daemon asked again every run and a hand-run ``kaalwatch sync`` asked at once. Kept on disk, the
    daemon, ``kaalwatch sync`` and every new client send nothing until it passes, and ``status``, ``auth
    status`` and the page header can show it.
    """

    def __init__(self, state: Workspace, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.clock = clock

    def until(self) -> float | None:
        """The epoch second before which Etsy must not be asked, or None when asking is fine."""
        return active_until(self.state.read_state(SYNC_STATE), self.clock())

    def set(self, until: float, reason: str) -> None:
        data = self.state.read_state(SYNC_STATE)
        current = data.get("not_before")
        if isinstance(current, int | float) and current >= until:
            return
        self.state.write_state(SYNC_STATE, {**data, "not_before": until, "not_before_reason": reason})


def active_until(sync_state: Mapping[str, Any], now: float) -> float | None:
    """The recorded "not before" of a sync state, if it has not passed."""
    value = sync_state.get("not_before")
    return float(value) if isinstance(value, int | float) and value > now else None


def describe_not_before(sync_state: Mapping[str, Any], now: float | None = None) -> str | None:
    """One line for ``status``, ``auth status`` and the page, or None when Etsy may be asked."""
    at = active_until(sync_state, time.time() if now is None else now)
    if at is None:
        return None
    reason = str(sync_state.get("not_before_reason") or "Etsy asked to wait")
    return f"{reason}: no Etsy request before {time.strftime('%Y-%m-%d %H:%M', time.localtime(at))}"


def retry_hint(seconds: float) -> str:
    at = time.localtime(time.time() + max(0.0, seconds))
    return f"retry after {time.strftime('%Y-%m-%d %H:%M', at)} (in {max(1, round(seconds / 60))} min)"


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None
