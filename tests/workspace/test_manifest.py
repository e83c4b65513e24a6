"""Reading ``order.yaml``: what a human may have typed is tolerated, anything else is one line naming the key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from kaalwatch.errors import ManifestError
from kaalwatch.manifest import dump_manifest, order_from_dict, order_to_dict, parse_manifest
from kaalwatch.model import Order


def test_what_a_human_types_by_hand_is_read(make_order: Callable[..., Order]) -> None:
    plain = order_to_dict(make_order())
    plain["gift_message"] = None  # "gift_message:" emptied
    plain["notes"] = None
    plain["jobs"][0]["sku"] = 12345  # unquoted
    plain["jobs"][0]["errors"] = None
    plain["ship_by"] = "2026-12-01T10:00:00"  # no zone
    plain["cancelled_at"] = ""
    order = order_from_dict(plain)
    assert (order.gift_message, order.notes, order.jobs[0].sku, order.jobs[0].errors) == ("", [], "12345", {})
    assert order.ship_by == datetime(2026, 12, 1, 10, tzinfo=UTC) and order.cancelled_at is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["jobs"][0].update(quantity="two"),
         r"^x.yaml: jobs\[0\].quantity: expected a whole number, got 'two'$"),
        (lambda p: p.update(urgent="maybe"), r"^x.yaml: urgent: expected true or false, got 'maybe'$"),
        (lambda p: p.update(ship_by="next week"), r"^x.yaml: ship_by: expected an ISO date-time, got 'next week'$"),
        (lambda p: p.update(jobs=[5]), r"^x.yaml: jobs\[0\]: expected a mapping, got 5$"),
        (lambda p: p.update(references="none"), r"^x.yaml: references: expected a list, got 'none'$"),
        (lambda p: p["jobs"][0].pop("title"), r"^x.yaml: jobs\[0\]: missing 'title'$"),
        (lambda p: p.update(shipment={"attempts": 1}), r"^x.yaml: shipment: missing 'status'$"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_key(make_order: Callable[..., Order],
                                                  change: Callable[[dict], object], message: str) -> None:
    plain = order_to_dict(make_order())
    change(plain)
    with pytest.raises(ManifestError, match=message):
        order_from_dict(plain, "x.yaml")


def test_round_trip_keeps_unknown_top_level_keys_and_drops_unknown_record_keys(
        make_order: Callable[..., Order]) -> None:
    plain = order_to_dict(make_order())
    plain["my_own_note"] = {"colours": ["warm"]}
    plain["extra"] = "a key a human named extra"
    plain["jobs"][0]["my_job_note"] = "not kept"
    order = order_from_dict(plain)
    assert order.extra == {"my_own_note": {"colours": ["warm"]}, "extra": "a key a human named extra"}
    again = parse_manifest(dump_manifest(order), "x.yaml")
    assert again == order and "my_job_note" not in dump_manifest(order)
