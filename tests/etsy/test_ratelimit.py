"""The client-side limiter on a fake clock: no real waiting."""

from __future__ import annotations

import pytest

from kaalwatch.errors import EtsyRateLimitError
from kaalwatch.etsy.ratelimit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_never_more_than_the_budget_in_any_second() -> None:
    t = FakeTime()
    limiter = RateLimiter(8, 10_000, clock=t.clock, sleep=t.sleep)
    sends = []
    for _ in range(40):
        limiter.acquire()
        sends.append(t.now)
    for i, start in enumerate(sends):
        assert sum(1 for s in sends[i:] if s < start + 1.0) <= 8
    assert sends[-1] - sends[0] >= 4.0  # 40 calls at 8/s take at least four windows


def test_remaining_headers_slow_it_down() -> None:
    t = FakeTime()
    limiter = RateLimiter(8, 10_000, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    limiter.observe({"x-remaining-this-second": "0", "x-remaining-today": "500"})
    limiter.acquire()
    assert t.slept and t.slept[-1] == pytest.approx(1.0)


def test_daily_budget_raises_with_when() -> None:
    t = FakeTime()
    limiter = RateLimiter(100, 3, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        limiter.acquire()
    with pytest.raises(EtsyRateLimitError, match="retry after"):
        limiter.acquire()
    t.now += 86_401
    limiter.acquire()


def test_etsy_saying_zero_today_stops_the_next_call() -> None:
    t = FakeTime()
    limiter = RateLimiter(10, 10_000, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    limiter.observe({"x-remaining-today": "0"})
    with pytest.raises(EtsyRateLimitError) as info:
        limiter.acquire()
    assert info.value.retry_at is not None
