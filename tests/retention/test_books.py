"""What the shop's books keep after anonymisation: receipt id, dates, status, totals and currency."""

from __future__ import annotations

from collections.abc import Callable

from kaalwatch import lifecycle, retention
from kaalwatch.etsy.parse import money, parse_receipt
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.retention.conftest import later


def test_etsy_money_objects_become_decimal_strings() -> None:
    assert money({"amount": 2380, "divisor": 100, "currency_code": "EUR"}) == "23.80"
    assert money({"amount": 1999, "divisor": 1000, "currency_code": "KWD"}) == "1.999"
    assert money({"amount": 7, "divisor": 1, "currency_code": "JPY"}) == "7"
    for bad in (None, "23.80", {"amount": "x", "divisor": 100}, {"amount": 5, "divisor": 0}, {"amount": 5}):
        assert money(bad) is None
    receipt = parse_receipt({"receipt_id": 1, "status": "Paid", "is_paid": True,
                             "grandtotal": {"amount": 4500, "divisor": 100, "currency_code": "usd"}})
    assert (receipt.total, receipt.currency) == ("45.00", "USD")
    assert parse_receipt({"receipt_id": 2, "grandtotal": {"amount": 1, "divisor": 100,
                                                          "currency_code": "<b>"}}).currency is None


def test_anonymised_order_keeps_the_books(ws: Workspace, settings: Settings,
                                          make_order: Callable[..., Order]) -> None:
    order = make_order(buyer="Octavia Fenwick")
    order.total, order.currency, order.etsy_status = "45.00", "USD", "Fully Refunded"
    ws.add_order(order)
    with ws.edit(order.receipt_id) as current:
        lifecycle.cancel(current, "Etsy: Fully Refunded")
    order = ws.load(order.receipt_id)  # as stored (times to the second)
    retention.purge(ws, settings, now=later(settings.retention.anonymise_days + 1))
    after = ws.load(order.receipt_id)
    assert after.anonymised_at and after.buyer_name != "Octavia Fenwick"
    assert (after.receipt_id, after.total, after.currency, after.etsy_status) == (
        order.receipt_id, "45.00", "USD", "Fully Refunded")
    assert after.ordered_at == order.ordered_at and after.cancelled_at is not None
