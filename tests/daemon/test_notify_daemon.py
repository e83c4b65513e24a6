"""Notifications from `kaalwatch run` as a real process against the sandbox shop: a new order and its
cancellation are told once each, a restart repeats neither, and a dead service is logged once while sync
carries on."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import Connected, DaemonProcess
from tests.support.inbox import Inbox, closed_port
from tests.support.polling import wait_for


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with Inbox() as box:
        yield box


def _with_notify(config: Path, *urls: str) -> None:
    data = json.loads(config.read_text())
    data["notify"] = {"urls": list(urls), "timeout_seconds": 3}
    config.write_text(json.dumps(data))


def test_daemon_tells_each_event_once_across_a_restart(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess], inbox: Inbox) -> None:
    ws, sb = connected.ws, connected.sandbox
    dead_port = closed_port()
    _with_notify(connected.config, inbox.url, f"json://127.0.0.1:{dead_port}/")
    daemon = daemon_factory(connected.config, ws.root, "notify").start()
    daemon.wait_healthy()
    wait_for(lambda: (daemon.health().get("last_sync_result") or "").startswith("sync:"), 30, what="a first sync")
    before = len(inbox.messages)  # the shop's first import: at most one summary, never one per order

    receipt_id = int(sb.add_order()["receipt_id"])
    wait_for(lambda: any(f"New order #{receipt_id}" == t for t in inbox.titles()), 40,
             what=f"the new order {receipt_id} told")
    sb.cancel(receipt_id)
    wait_for(lambda: f"Order #{receipt_id} cancelled on Etsy" in inbox.titles(), 40, what="the cancellation told")
    code, _ = daemon.terminate()
    assert code == 0
    told = list(inbox.titles())

    again = daemon_factory(connected.config, ws.root, "notify-again").start()
    again.wait_healthy()
    second = int(sb.add_order()["receipt_id"])  # proves the restarted daemon scanned every order again
    wait_for(lambda: f"New order #{second}" in inbox.titles(), 40, what="the second new order told")
    code, _ = again.terminate()
    assert code == 0
    assert inbox.titles()[len(told):] == [f"New order #{second}"], inbox.titles()
    assert told.count(f"New order #{receipt_id}") == 1 and before <= 1
    # The dead service: one line per daemon run, no URL, and sync went on regardless.
    for proc in (daemon, again):
        log = proc.output()
        assert log.count("could not be delivered") == 1, log
        assert str(dead_port) not in log and "Traceback" not in log
    assert (again.health().get("last_sync_result") or "").startswith("sync:")
