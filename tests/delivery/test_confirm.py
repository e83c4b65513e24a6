"""After the upload: delivered only when Etsy (or the artist, recorded) confirms; the optional shipment once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from kaalwatch import delivery, lifecycle
from kaalwatch.errors import AuthError, DeliveryError, EtsyError
from kaalwatch.etsy.tokens import Tokens
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import noise, with_workflow


@pytest.fixture
def ready_order(ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> Order:
    order = order_with_art(noise(160, 120))
    assert delivery.prepare(ws, with_workflow(settings, Promise(format="png")), order.receipt_id).ok
    return ws.load(order.receipt_id)


def test_claimed_upload_waits_for_etsy_then_delivers(ws: Workspace, ready_order: Order) -> None:
    rid = ready_order.receipt_id
    assert delivery.confirm_uploaded(ws, rid, manual=False) == [ready_order.jobs[0].job_id]
    order = ws.load(rid)
    assert order.jobs[0].state is JobState.READY_TO_DELIVER  # a claim is not a delivery
    assert order.history[-1].event == "upload_claimed"

    with ws.edit(rid) as current:  # what sync does when Etsy shows the receipt completed
        lifecycle.etsy_completed(current)
    job = ws.load(rid).jobs[0]
    assert job.state is JobState.DELIVERED and job.delivery_confirmed_by == "etsy" and job.delivered_at


def test_manual_confirmation_is_recorded_as_such(ws: Workspace, ready_order: Order) -> None:
    delivery.confirm_uploaded(ws, ready_order.receipt_id, manual=True, actor="review")
    order = ws.load(ready_order.receipt_id)
    job = order.jobs[0]
    assert job.state is JobState.DELIVERED and job.delivery_confirmed_by == "manual"
    event = next(e for e in reversed(order.history) if e.event == "delivered")
    assert event.actor == "review" and event.details["confirmed_by"] == "manual"


def test_confirming_without_ready_files_is_refused(
        ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(32, 32))  # approved, never prepared
    with pytest.raises(DeliveryError, match="no job ready to deliver"):
        delivery.confirm_uploaded(ws, order.receipt_id, manual=True)
    assert ws.load(order.receipt_id).jobs[0].state is JobState.APPROVED


def test_completion_on_etsy_without_approval_is_flagged(
        ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(32, 32), approved=False)
    with ws.edit(order.receipt_id) as current:
        lifecycle.etsy_completed(current)
    job = ws.load(order.receipt_id).jobs[0]
    assert job.state is JobState.IN_PROGRESS
    assert "without an approved version" in job.errors["etsy"]


def test_etsy_order_url_real_and_sandbox(settings: Settings) -> None:
    assert delivery.etsy_order_url(settings, 42) == "https://www.etsy.com/your/orders/sold?order_id=42"
    local = dataclasses.replace(settings, etsy=dataclasses.replace(settings.etsy, base_url="http://127.0.0.1:8123/"))
    assert delivery.etsy_order_url(local, 42) == "http://127.0.0.1:8123/your/orders/sold?order_id=42"


class FakeClient:
    """Records createReceiptShipment calls; raises what it is told to."""

    def tokens(self) -> Tokens:
        return Tokens(access_token="a", refresh_token="r", expires_at=0, refresh_issued_at=0)  # no shop id known

    def get_me(self) -> dict[str, Any]:
        return {"user_id": 1, "shop_id": 77}

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[int, int, str]] = []

    def create_receipt_shipment(self, shop_id: int, receipt_id: int, note_to_buyer: str) -> Any:
        self.calls.append((shop_id, receipt_id, note_to_buyer))
        if self.error:
            raise self.error
        return {"receipt_id": receipt_id}


def _shipping(settings: Settings) -> Settings:
    return dataclasses.replace(settings, delivery=dataclasses.replace(settings.delivery, create_shipment=True))


def test_shipment_is_off_by_default_and_sent_once_when_on(
        ws: Workspace, settings: Settings, ready_order: Order) -> None:
    rid = ready_order.receipt_id
    delivery.confirm_uploaded(ws, rid, manual=True)
    client = FakeClient()
    assert delivery.ship_confirmed_orders(ws, settings, client) == [] and client.calls == []

    assert delivery.ship_confirmed_orders(ws, _shipping(settings), client) == [f"{rid}: created"]
    assert delivery.ship_confirmed_orders(ws, _shipping(settings), client) == []
    assert client.calls == [(77, rid, settings.delivery.shipment_note)]
    assert ws.load(rid).shipment.status == "created"


def test_shipment_not_sent_before_delivery(ws: Workspace, settings: Settings, ready_order: Order) -> None:
    client = FakeClient()
    assert delivery.ship_confirmed_orders(ws, _shipping(settings), client) == [] and client.calls == []


def test_refused_shipment_is_recorded_and_never_retried(
        ws: Workspace, settings: Settings, ready_order: Order) -> None:
    rid = ready_order.receipt_id
    delivery.confirm_uploaded(ws, rid, manual=True)
    client = FakeClient(AuthError("the connection lacks transactions_w"))
    assert delivery.ship_confirmed_orders(ws, _shipping(settings), client) == [f"{rid}: refused"]
    assert delivery.ship_confirmed_orders(ws, _shipping(settings), client) == []
    assert len(client.calls) == 1
    order = ws.load(rid)
    assert order.shipment is not None and order.shipment.status == "refused"
    assert "did not mark this order shipped" in order.errors["shipment"]


def test_failing_shipment_gives_up_after_a_few_passes(
        ws: Workspace, settings: Settings, ready_order: Order) -> None:
    rid = ready_order.receipt_id
    delivery.confirm_uploaded(ws, rid, manual=True)
    client = FakeClient(EtsyError("Etsy could not be reached"))
    outcomes = [delivery.ship_confirmed_orders(ws, _shipping(settings), client) for _ in range(5)]
    assert outcomes == [[f"{rid}: failed"], [f"{rid}: failed"], [f"{rid}: gave_up"], [], []]
    assert len(client.calls) == delivery.SHIPMENT_ATTEMPTS
