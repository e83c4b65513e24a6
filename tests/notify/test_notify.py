"""Notifications end to end through apprise's own ``json://`` target to a loopback server: the right events,
once each, not repeated by a restart, no buyer data beyond the first name, and a dead service logged once."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from kaalwatch import lifecycle
from kaalwatch.model import Order, Reference, utcnow
from kaalwatch.notify import Notifier, Sender
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.support.inbox import Inbox, closed_port
from tests.support.polling import wait_for


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with Inbox() as box:
        yield box


#: Retries a test can wait for (the shipped ones are minutes apart).
QUICK_RETRIES = (0.2, 0.2, 0.2)


def notifier(ws: Workspace, settings: Settings, *urls: str, **kinds: bool) -> Notifier:
    return Notifier(ws, dataclasses.replace(settings.notify, urls=urls, timeout_seconds=3, **kinds),
                    functools.partial(Sender, retry_after=QUICK_RETRIES))


def happenings(ws: Workspace, make_order: Callable[..., Order],
               start: Callable[[], Notifier]) -> tuple[dict[str, int], Notifier]:
    """Four orders that exist before notifications start, then one of everything worth telling, recorded the
    way sync, the watcher and delivery record it."""
    photos = make_order(buyer="Ada Lovelace", days=10)
    cancelled = make_order(buyer="Alan Turing", days=10)
    delivered = make_order(buyer="Katherine Johnson", days=10)
    tomorrow = make_order(buyer="Hedy Lamarr", days=1)
    for made in (photos, cancelled, delivered, tomorrow):
        ws.add_order(made)
        with ws.edit(made.receipt_id) as order:  # imported a while ago (history is kept to the second)
            for event in order.history:
                event.at -= timedelta(minutes=5)
    told = start()
    new = make_order(buyer="Grace Brewster Hopper", titles=["Dog portrait of Biscuit"], days=10)
    ws.add_order(new)
    with ws.edit(photos.receipt_id) as order:
        lifecycle.add_reference(order, Reference(name="sofa.jpg", source="buyer", sha256="ab" * 32), actor="sync")
        lifecycle.add_reference(order, Reference(name="garden.jpg", source="buyer", sha256="cd" * 32), actor="sync")
    with ws.edit(cancelled.receipt_id) as order:
        lifecycle.cancel(order, "Etsy status: fully refunded")
    with ws.edit(delivered.receipt_id) as order:
        job = order.jobs[0]
        job.approved_version = 1
        job.state = lifecycle.S.READY_TO_DELIVER
        lifecycle.etsy_completed(order)
    ids = {"new": new.receipt_id, "photos": photos.receipt_id, "cancelled": cancelled.receipt_id,
           "delivered": delivered.receipt_id, "tomorrow": tomorrow.receipt_id}
    return ids, told


def test_each_event_is_told_once_and_a_restart_repeats_none(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], inbox: Inbox) -> None:
    ids, first = happenings(ws, make_order, lambda: notifier(ws, settings, inbox.url))
    ws.write_state("sync", {"last_success": (utcnow() - timedelta(hours=2)).isoformat(),
                            "last_error": "Etsy answered 503"})
    queued = first.scan()
    assert sorted(n.kind for n in queued) == ["cancelled", "delivered", "new_order", "photos", "ship_by",
                                              "sync_problem"]
    wait_for(lambda: len(inbox.messages) == len(queued), 15, what="every notice delivered")
    titles = inbox.titles()
    for expected in (f"New order #{ids['new']}", f"Photos arrived for #{ids['photos']}",
                     f"Order #{ids['cancelled']} cancelled on Etsy", f"Delivered: #{ids['delivered']}",
                     f"#{ids['tomorrow']} ships tomorrow", "Etsy sync is failing"):
        assert expected in titles, (expected, titles)
    # Orders from before notifications were on are not announced as new.
    assert not any(str(ids[k]) in t for k in ("photos", "cancelled", "delivered") for t in titles if "New" in t)
    # Two buyer photos make one notice; the delivered order's approved job makes no "ships tomorrow".
    assert sum("Photos arrived" in t for t in titles) == 1
    assert f"#{ids['delivered']} ships tomorrow" not in titles

    assert first.scan() == []  # the same scan again: nothing new
    first.stop()
    count = len(inbox.messages)
    restarted = notifier(ws, settings, inbox.url)
    assert restarted.scan() == []  # a restart reads every manifest again and tells nothing twice
    with ws.edit(ids["new"]) as order:
        lifecycle.cancel(order, "Etsy status: canceled")
    news = restarted.scan()
    assert [n.title for n in news] == [f"Order #{ids['new']} cancelled on Etsy"]
    wait_for(lambda: len(inbox.messages) == count + 1, 15, what="the one new notice")
    restarted.stop()


def test_text_carries_only_the_first_name_and_receipt_id(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], inbox: Inbox) -> None:
    ids, told = happenings(ws, make_order, lambda: notifier(ws, settings, inbox.url))
    with ws.edit(ids["new"]) as order:
        order.message_from_buyer = "Secret: my address is 1 Infinite Loop"
    told.scan()
    wait_for(lambda: len(inbox.messages) >= 5, 15, what="the notices")
    text = inbox.text()
    assert "Grace" in text and str(ids["new"]) in text
    for private in ("Brewster", "Hopper", "Lovelace", "Turing", "Johnson", "Lamarr", "Infinite Loop", "sofa.jpg"):
        assert private not in text, private
    told.stop()


def test_each_kind_can_be_switched_off(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], inbox: Inbox) -> None:
    _, quiet = happenings(ws, make_order,
                          lambda: notifier(ws, settings, inbox.url, new_order=False, ship_by=False, photos=False))
    kinds = sorted(n.kind for n in quiet.scan())
    assert kinds == ["cancelled", "delivered"]
    quiet.stop()


def test_a_burst_becomes_one_summary(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], inbox: Inbox) -> None:
    told = notifier(ws, settings, inbox.url)
    for _ in range(6):
        ws.add_order(make_order())
    queued = told.scan()
    assert [n.title for n in queued] == ["6 new orders"] and len(queued[0].keys) == 6
    wait_for(lambda: inbox.messages, 15, what="the summary")
    told.stop()


def test_an_unreachable_service_is_tried_again_logged_once_and_changes_nothing_else(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], inbox: Inbox,
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"json://127.0.0.1:{closed_port()}/"
    caplog.set_level(logging.INFO)
    ids, told = happenings(ws, make_order, lambda: notifier(ws, settings, dead, inbox.url))
    queued = told.scan()  # returns at once: sending happens on the notifier's own thread
    wait_for(lambda: len(inbox.messages) == len(queued), 20, what="the working service still told")
    wait_for(lambda: set(ws.read_state("notify").get("sent") or {}) >= {k for n in queued for k in n.keys}, 20,
             what="every attempt recorded")
    wait_for(lambda: sum("given up after" in r.getMessage() for r in caplog.records) == len(queued), 20,
             what="the dead service tried again, then given up, for each notice")
    assert len(inbox.messages) == len(queued)  # the retries went to the dead service only
    failures = [r for r in caplog.records if "could not be delivered" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    given_up = next(r.getMessage() for r in caplog.records if "given up after" in r.getMessage())
    assert f"after {len(QUICK_RETRIES) + 1} tries" in given_up
    assert dead.split(":")[2] not in caplog.text and "json://" not in caplog.text  # no URLs (tokens) in logs
    assert told.scan() == []  # given up counts as told: a dead service does not make it repeat
    assert ws.load(ids["new"]).jobs  # the workspace is untouched by the failure
    told.stop()


def test_a_service_back_after_a_bad_minute_gets_the_notice_once(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    with Inbox(refuse_first=2) as flaky:
        told = notifier(ws, settings, flaky.url)
        ws.add_order(make_order(buyer="Mary Jackson"))
        (notice,) = told.scan()
        wait_for(lambda: flaky.messages, 20, what="the notice, on the third try")
        assert flaky.refused == 2 and flaky.titles() == [notice.title]
        assert told.scan() == []  # recorded at its first attempt: a retry is not a new notice
        told.stop()


def test_notify_test_command_sends_one(tmp_path, inbox: Inbox) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"workspace": str(tmp_path / "ws"), "notify": {"urls": [inbox.url]}}))
    result = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "notify", "--test"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert inbox.titles() == ["kaalwatch test notification"]
    config.write_text(json.dumps({"workspace": str(tmp_path / "ws"), "notify": {"urls": []}}))
    result = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "notify", "--test"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "notify.urls" in result.stderr and len(result.stderr.splitlines()) == 1
