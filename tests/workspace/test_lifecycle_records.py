"""What sync and delivery learn is changed by lifecycle functions that record it: buyer messages (the fields,
never the text), Etsy's update time and totals, shipments, upload claims."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kaalwatch import lifecycle
from kaalwatch.model import Deliverable, Order, Version, order_from_dict, order_to_dict, utcnow

SECRET = "please draw my late cat Mr Whiskers"


def test_buyer_messages_record_which_fields_changed_never_the_text(make_order: Callable[..., Order]) -> None:
    order = make_order()
    assert lifecycle.buyer_messages_changed(order, SECRET, "", "sync") == ["message_from_buyer"]
    assert order.message_from_buyer == SECRET
    event = order.history[-1]
    assert (event.event, event.details) == ("buyer_messages_changed", {"fields": ["message_from_buyer"]})
    assert SECRET not in repr(order.history)
    assert lifecycle.buyer_messages_changed(order, SECRET, "", "sync") == []  # nothing new, nothing recorded
    assert len(order.history) == 1


def test_an_anonymised_order_never_gets_the_buyer_text_back(make_order: Callable[..., Order]) -> None:
    order = make_order()
    lifecycle.anonymise(order, "salt")
    assert lifecycle.buyer_messages_changed(order, SECRET, SECRET, "sync") == []
    assert (order.message_from_buyer, order.gift_message) == ("", "")


def test_etsy_update_time_and_totals_are_recorded_once_per_change(make_order: Callable[..., Order]) -> None:
    order = make_order()
    moment = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    lifecycle.etsy_updated(order, moment)
    lifecycle.etsy_updated(order, moment)
    lifecycle.totals_changed(order, "23.80", "EUR")
    lifecycle.totals_changed(order, "23.80", "EUR")
    lifecycle.totals_changed(order, "11.90", "EUR")  # a partial refund
    assert order.etsy_updated_at == moment and (order.total, order.currency) == ("11.90", "EUR")
    assert [e.event for e in order.history] == ["etsy_updated", "total_changed", "total_changed"]


def test_shipments_count_attempts_and_own_the_shipment_warning(make_order: Callable[..., Order]) -> None:
    order = make_order()
    lifecycle.record_shipment(order, "failed", "Etsy unreachable")
    assert order.shipment is not None and (order.shipment.status, order.shipment.attempts) == ("failed", 1)
    assert "shipment" not in order.errors
    lifecycle.record_shipment(order, "refused", "no transactions_w scope")
    assert order.shipment.attempts == 2 and "did not mark this order shipped" in order.errors["shipment"]
    lifecycle.record_shipment(order, "created", None)
    assert order.shipment.status == "created" and "shipment" not in order.errors
    with pytest.raises(ValueError):
        lifecycle.record_shipment(order, "shipped", None)


def test_an_upload_claim_lasts_until_new_files_are_built(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job = order.jobs[0]
    assert lifecycle.claim_upload(order) == []  # nothing ready: nothing claimed
    assert order.upload_claimed_at is None
    lifecycle.add_version(order, job.job_id, Version(number=1, source_name="a.png", sha256="a" * 64, size=1,
                                                     saved_at=utcnow(), copy="versions/a.png"))
    lifecycle.approve(order, job.job_id, 1)
    files = [Deliverable(name="a.png", format="png", size=1, sha256="b" * 64, from_version=1)]
    lifecycle.mark_ready(order, job.job_id, files)
    assert lifecycle.claim_upload(order) == [job.job_id] and order.upload_claimed_at is not None
    lifecycle.mark_ready(order, job.job_id, files)  # rebuilt: the claim was about the earlier files
    assert order.upload_claimed_at is None


def test_a_shipment_written_by_an_earlier_version_loads_as_the_typed_field(make_order: Callable[..., Order]) -> None:
    plain = order_to_dict(make_order())
    plain["shipment"] = {"status": "refused", "attempts": 1, "at": "2026-11-01T12:00:00+00:00", "error": "no scope"}
    order = order_from_dict(plain)
    assert order.shipment is not None and (order.shipment.status, order.shipment.error) == ("refused", "no scope")
    assert "shipment" not in order.extra and order_to_dict(order)["shipment"]["attempts"] == 1
