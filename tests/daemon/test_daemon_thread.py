"""The daemon loop in a thread with short timings: a dying watcher is replaced, the rest keeps going, stop is clean."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import requests

from kaalwatch.daemon import Daemon
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.daemon.conftest import wait_for


class FakeWatcher:
    """Stands in for WatchService: alive once started, until the test kills it (ensure_alive cannot help)."""

    def __init__(self) -> None:
        self.alive = False
        self.dead_for_good = False
        self.stopped = False
        self.rescans = 0

    def start(self) -> None:
        self.alive = True

    def stop(self, timeout: float = 10) -> None:
        self.stopped = True
        self.alive = False

    def health(self) -> dict[str, Any]:
        return {"alive": self.alive, "backend": "fake", "queue_length": 3, "last_error": None}

    def ensure_alive(self) -> bool:
        return False  # its own thread is gone: only a new watcher helps

    def rescan(self, receipt_id: int | None = None) -> str:
        self.rescans += 1
        return "rescanned"


def test_a_watcher_that_dies_is_replaced_and_the_page_stays_up(ws: Workspace, settings: Settings) -> None:
    fast = dataclasses.replace(
        settings,
        etsy=dataclasses.replace(settings.etsy, base_url="http://127.0.0.1:9", keystring="k", shared_secret="s"),
        review=dataclasses.replace(settings.review, port=0, require_password=False),
    )
    made: list[FakeWatcher] = []

    def factory(_ws: Workspace, _settings: Settings, _pool: Any) -> FakeWatcher:
        made.append(FakeWatcher())
        return made[-1]

    daemon = Daemon(fast, tick_seconds=0.05, grace_seconds=2, watcher_factory=factory)
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(daemon.run(stop)), name="daemon-under-test")
    runner.start()
    try:
        assert daemon.ready.wait(30)
        health = wait_for(lambda: (h := ws.read_state("health")).get("watcher_alive") and h, 10)
        assert health["watcher_backend"] == "fake" and health["queue_length"] == 3
        made[0].alive = False  # the watcher's thread died
        wait_for(lambda: len(made) == 2 and made[1].alive, 10, what="a replacement watcher")
        assert made[0].stopped and made[1].rescans >= 1
        health = wait_for(lambda: (h := ws.read_state("health")).get("watcher_alive") and h, 10)
        assert any("starting a new one" in e for e in health["errors"])
        url = health["review_url"]
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive() and result == [0]
    final = ws.read_state("health")
    assert final["running"] is False
    assert not (Path(ws.tool_dir) / "daemon.pid").exists()
