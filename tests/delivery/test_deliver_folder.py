"""``deliver/`` holds only the files of ready jobs, by construction: whatever takes a job out of ready, the
workspace's edit takes its files out of the folder — no caller calls anything for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kaalwatch import delivery, lifecycle
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import add_version, deliver_files, encode, noise, with_workflow


def _new_version(ws: Workspace, order: Order) -> None:
    add_version(ws, order.receipt_id, order.jobs[0].job_id, encode(noise(210, 150)))


def _another_approval(ws: Workspace, order: Order) -> None:
    job_id = order.jobs[0].job_id
    number = add_version(ws, order.receipt_id, job_id, encode(noise(210, 150)))
    with ws.edit(order.receipt_id) as current:
        lifecycle.approve(current, job_id, number)


def _cancelled_on_etsy(ws: Workspace, order: Order) -> None:
    with ws.edit(order.receipt_id) as current:
        lifecycle.cancel(current, "Etsy: refunded")


def _delivered_then_reopened(ws: Workspace, order: Order) -> None:
    delivery.confirm_uploaded(ws, order.receipt_id, manual=True)
    assert deliver_files(ws, order.receipt_id)  # a delivered job's files are the record of the delivery
    with ws.edit(order.receipt_id) as current:
        lifecycle.reopen(current, order.jobs[0].job_id)


def _crop_moved(ws: Workspace, order: Order) -> None:
    with ws.edit(order.receipt_id) as current:
        lifecycle.set_framing(current, order.jobs[0].job_id, "png", 0.2, False)


@pytest.mark.parametrize("leave", [_new_version, _another_approval, _cancelled_on_etsy, _delivered_then_reopened,
                                   _crop_moved], ids=lambda f: f.__name__.strip("_"))
def test_a_job_leaving_ready_leaves_no_file_in_deliver(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order],
        leave: Callable[[Workspace, Order], None]) -> None:
    settings = with_workflow(settings, Promise(format="png"))
    order = order_with_art(noise(200, 150))
    assert delivery.prepare(ws, settings, order.receipt_id).ok
    assert len(deliver_files(ws, order.receipt_id)) == 1

    leave(ws, order)

    after = ws.load(order.receipt_id)
    assert after.jobs[0].state is not JobState.READY_TO_DELIVER
    assert deliver_files(ws, order.receipt_id) == []
    assert after.jobs[0].deliverables == []
    assert any(e.event == "deliverables_removed" for e in after.history)


def test_on_hold_keeps_the_files_and_reopening_finds_them(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="png"))
    order = order_with_art(noise(200, 150))
    delivery.prepare(ws, settings, order.receipt_id)
    job_id = order.jobs[0].job_id
    with ws.edit(order.receipt_id) as current:
        lifecycle.hold(current, job_id, "buyer on holiday")
    assert len(deliver_files(ws, order.receipt_id)) == 1
    with ws.edit(order.receipt_id) as current:
        lifecycle.reopen(current, job_id)
    assert ws.load(order.receipt_id).jobs[0].state is JobState.READY_TO_DELIVER
    assert len(deliver_files(ws, order.receipt_id)) == 1
