"""Smoke: the sandbox starts fast, speaks OAuth and serves receipts over a real socket."""

from __future__ import annotations

import threading
import time

from kaalwatch.sandbox import Sandbox


def test_starts_fast_and_stops_without_leaking_threads() -> None:
    before = set(threading.enumerate())
    t0 = time.perf_counter()
    sb = Sandbox(seed=3)
    sb.start()
    elapsed = time.perf_counter() - t0
    assert sb.url.startswith("http://127.0.0.1:")
    sb.stop()
    assert elapsed < 0.5, f"start took {elapsed:.3f}s"
    assert set(threading.enumerate()) - before == set()


def test_receipts_over_http(sandbox, api) -> None:
    r = api("GET", "/v3/application/shops/{shop_id}/receipts", params={"limit": 100})
    assert r.status_code == 200
    assert r.json()["count"] == len(sandbox.receipt_ids)
