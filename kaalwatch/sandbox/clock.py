"""The sandbox's time source: real time plus an offset tests can advance, optionally frozen."""

from __future__ import annotations

import threading
import time


class Clock:
    """Epoch seconds as the sandbox sees them.

    ``Clock()`` follows real time; ``Clock(start=1_760_000_000, frozen=True)`` stands still until
    :meth:`advance` is called, which is what rate-limit tests want (a real second can straddle a window).
    Tokens, rate-limit windows, receipt timestamps and new orders all read this clock, so advancing it
    expires tokens and rolls the daily window without sleeping.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen
        self._real_at_start = time.time()
        self._start = self._real_at_start if start is None else float(start)
        self._offset = 0.0  # what advance() added

    def now(self) -> float:
        """Current sandbox time, epoch seconds (float); frozen clocks ignore real time entirely."""
        with self._lock:
            elapsed = 0.0 if self._frozen else time.time() - self._real_at_start
            return self._start + elapsed + self._offset

    def now_int(self) -> int:
        """Current sandbox time as Etsy's integer epoch seconds."""
        return int(self.now())

    def advance(self, seconds: float) -> None:
        """Jump forward (or back, with a negative value) by ``seconds``."""
        with self._lock:
            self._offset += float(seconds)
