"""The daemon's small parts: backoff, health bookkeeping, the single-instance lock (in this process)."""

from __future__ import annotations

import os

import pytest

from kaalwatch.errors import WorkspaceError
from kaalwatch.health import Backoff, Health
from kaalwatch.instance import instance_lock, lock_holder
from kaalwatch.store import Workspace


def test_backoff_skips_runs_exponentially_and_caps() -> None:
    backoff = Backoff(max_skip=5)
    runs = []
    for _ in range(30):
        if backoff.should_run():
            runs.append(backoff.failed())
    assert runs == [0, 1, 3, 5, 5, 5, 5]  # skipped runs before each next attempt
    backoff.succeeded()
    assert backoff.should_run()


def test_backoff_for_interval_caps_at_an_hour() -> None:
    assert Backoff.for_interval(600).max_skip == 5  # 10-minute syncs: at most 6 intervals between attempts
    assert Backoff.for_interval(15).max_skip == 239
    assert Backoff.for_interval(7200).max_skip == 0  # never skip a run of a slow schedule


def test_health_dedupes_repeated_errors_and_forgets_recovered_parts(caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    for _ in range(3):
        health.error("sync", "Etsy unreachable\nTraceback …")
    health.error("watcher", "observer died")
    snap = health.snapshot()
    assert len(snap["errors"]) == 2 and snap["errors"][0].endswith("sync: Etsy unreachable")
    assert snap["failing"] == ["sync", "watcher"]
    health.recovered("sync")
    health.error("sync", "Etsy unreachable")  # failing again after recovering is news again
    assert len(health.snapshot()["errors"]) == 3
    assert caplog.text.count("Etsy unreachable") == 2


def test_second_lock_names_the_holder(ws: Workspace) -> None:
    with instance_lock(ws):
        assert lock_holder(ws.root) == str(os.getpid())
        with pytest.raises(WorkspaceError, match=rf"already running on .* \(pid {os.getpid()}\)"), instance_lock(ws):
            pass
    assert lock_holder(ws.root) is None
    with instance_lock(ws):  # released: a new holder gets it
        pass
