"""Etsy's per-token rate limits: a per-second and a rolling 24-hour budget, with the headers Etsy sends."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DAY = 86_400.0


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: allowed with headers, or refused (``error``) with a 429's headers."""

    headers: dict[str, str]
    error: str | None = None


class RateLimiter:
    """Sliding windows per key (the token holder), counted on the sandbox clock."""

    def __init__(self, per_second: int, per_day: int, now: Callable[[], float]) -> None:
        self.per_second = per_second
        self.per_day = per_day
        self._now = now
        self._lock = threading.Lock()
        self._second: dict[str, deque[float]] = {}
        self._day: dict[str, deque[float]] = {}

    def hit(self, key: str) -> Decision:
        """Count one request for ``key`` if the budgets allow it."""
        with self._lock:
            now = self._now()
            sec = self._second.setdefault(key, deque())
            day = self._day.setdefault(key, deque())
            while sec and sec[0] <= now - 1.0:
                sec.popleft()
            while day and day[0] <= now - DAY:
                day.popleft()
            if len(day) >= self.per_day:
                # Etsy was seen sending retry-after on the daily limit; ours says when the window frees up.
                wait = max(1, math.ceil(day[0] + DAY - now))
                return Decision({"retry-after": str(wait)}, "Exceeded daily rate limit")
            if len(sec) >= self.per_second:
                # Real 429s may carry no headers at all; we send none on the per-second limit.
                return Decision({}, "Exceeded per second rate limit")
            sec.append(now)
            day.append(now)
            return Decision({
                "x-limit-per-second": str(self.per_second),
                "x-remaining-this-second": str(self.per_second - len(sec)),
                "x-limit-per-day": str(self.per_day),
                "x-remaining-today": str(self.per_day - len(day)),
            })

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self._second.clear()
            self._day.clear()
