"""The daemon loop in a thread with short timings: a dying watcher is restarted, the rest keeps going, stop is clean."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import requests

from kaalwatch.daemon import Daemon
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.support.polling import wait_for


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death we simulate
def test_a_watcher_whose_thread_dies_is_restarted_and_the_page_stays_up(ws: Workspace, settings: Settings) -> None:
    fast = dataclasses.replace(
        settings,
        etsy=dataclasses.replace(settings.etsy, base_url="http://127.0.0.1:9", keystring="k", shared_secret="s"),
        review=dataclasses.replace(settings.review, port=0, require_password=False),
    )
    daemon = Daemon(fast, tick_seconds=0.05, grace_seconds=2)
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(daemon.run(stop)), name="daemon-under-test")
    runner.start()
    try:
        assert daemon.ready.wait(30)
        wait_for(lambda: ws.read_state("health").get("watcher_alive"), 10)
        watcher = daemon._watcher
        real_handle = watcher._handle

        def die(item: object) -> None:
            watcher._handle = real_handle
            raise SystemExit("simulated death of the watcher's thread")  # escapes its catch-all

        watcher._handle = die
        watcher._queue.put(("rescan", None, None))
        wait_for(lambda: watcher.restarts >= 1 and watcher.health()["alive"], 10, what="the watcher restarted")
        health = wait_for(lambda: (h := ws.read_state("health")).get("watcher_alive") and any(
            "restarted" in e for e in h["errors"]) and h, 10)
        url = health["review_url"]
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        stop.set()
        runner.join(timeout=20)
    assert not runner.is_alive() and result == [0]
    final = ws.read_state("health")
    assert final["running"] is False
    assert not (Path(ws.tool_dir) / "daemon.pid").exists()
