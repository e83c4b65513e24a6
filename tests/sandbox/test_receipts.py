"""getShopReceipts filters, sorting and paging; receipt writes; the admin mutations' effect on timestamps."""

from __future__ import annotations

import pytest

from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.sandbox.seed import FAMILY_LISTING, LEGACY_LISTING, NOT_REQUESTED, PET_LISTING

RECEIPTS = "/v3/application/shops/{shop_id}/receipts"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.text
    return [r["receipt_id"] for r in response.json()["results"]]


def all_receipts(sb: Sandbox) -> list[dict]:
    return [sb.receipt(i) for i in sb.receipt_ids]


def test_default_page_is_25_newest_first(sandbox: Sandbox, api) -> None:
    body = api("GET", RECEIPTS).json()
    created = [r["create_timestamp"] for r in body["results"]]
    assert body["count"] == len(sandbox.receipt_ids)
    assert len(created) == min(25, body["count"]) and created == sorted(created, reverse=True)


@pytest.mark.parametrize(("param", "field", "pred"), [
    ("was_paid", "is_paid", lambda r, v: r["is_paid"] is v),
    ("was_shipped", "is_shipped", lambda r, v: r["is_shipped"] is v),
    ("was_canceled", "status", lambda r, v: (r["status"].lower() == "canceled") is v),
    ("was_delivered", "status", lambda r, v: (r["status"] == "Completed") is v),
])
@pytest.mark.parametrize("value", [True, False])
def test_boolean_filters(sandbox: Sandbox, api, param, field, pred, value) -> None:
    expected = sorted(r["receipt_id"] for r in all_receipts(sandbox) if pred(r, value))
    got = ids(api("GET", RECEIPTS, params={param: str(value).lower(), "limit": 100}))
    assert sorted(got) == expected
    assert expected, f"the seed should have receipts with {param}={value}"


def test_created_and_modified_ranges_are_inclusive(sandbox: Sandbox, api) -> None:
    rs = all_receipts(sandbox)
    created = sorted(r["create_timestamp"] for r in rs)
    lo, hi = created[3], created[-4]
    want = sorted(r["receipt_id"] for r in rs if lo <= r["create_timestamp"] <= hi)
    got = ids(api("GET", RECEIPTS, params={"min_created": lo, "max_created": hi, "limit": 100}))
    assert sorted(got) == want and len(want) == len(rs) - 6
    target = rs[0]
    sandbox.advance(10)
    touched = sandbox.touch(target["receipt_id"])
    got = ids(api("GET", RECEIPTS, params={"min_last_modified": touched["update_timestamp"], "limit": 100}))
    assert got == [target["receipt_id"]]
    before = ids(api("GET", RECEIPTS, params={"max_last_modified": touched["update_timestamp"] - 1,
                                             "limit": 100}))
    assert target["receipt_id"] not in before and len(before) == len(rs) - 1


@pytest.mark.parametrize(("sort_on", "key"), [("created", "create_timestamp"), ("updated", "update_timestamp"),
                                              ("receipt_id", "receipt_id")])
@pytest.mark.parametrize("order", ["asc", "ascending", "up", "desc", "descending", "down"])
def test_sorting(sandbox: Sandbox, api, sort_on, key, order) -> None:
    results = api("GET", RECEIPTS, params={"sort_on": sort_on, "sort_order": order, "limit": 100}).json()["results"]
    values = [(r[key], r["receipt_id"]) for r in results]
    assert values == sorted(values, reverse=order in ("desc", "descending", "down"))


def test_paging_covers_everything_once(sandbox: Sandbox, api) -> None:
    seen: list[int] = []
    offset = 0
    while True:
        body = api("GET", RECEIPTS, params={"limit": 7, "offset": offset, "sort_on": "updated",
                                           "sort_order": "asc"}).json()
        seen += [r["receipt_id"] for r in body["results"]]
        offset += 7
        if offset >= body["count"]:
            break
    assert sorted(seen) == sandbox.receipt_ids


def test_offset_past_the_end_is_empty_with_the_true_count(sandbox: Sandbox, api) -> None:
    body = api("GET", RECEIPTS, params={"offset": 10_000}).json()
    assert body == {"count": len(sandbox.receipt_ids), "results": []}


@pytest.mark.parametrize(("params", "needle"), [
    ({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset"),
    ({"sort_on": "status"}, "sort_on"), ({"sort_order": "sideways"}, "sort_order"),
    ({"was_paid": "maybe"}, "was_paid"), ({"min_created": 5}, "min_created"), ({"limit": "ten"}, "limit"),
])
def test_bad_parameters_are_400(api, params, needle) -> None:
    r = api("GET", RECEIPTS, params=params)
    assert r.status_code == 400 and needle in r.json()["error"]


def test_limit_100_and_exactly_100_results() -> None:
    with Sandbox(seed=2, receipts=81, auto_approve=True, clock=Clock(frozen=True), rate_per_second=1000) as sb:
        assert len(sb.receipt_ids) == 100
        from tests.sandbox.conftest import login

        token = login(sb).access_token
        import requests

        def page(offset: int) -> dict:
            return requests.get(f"{sb.url}/v3/application/shops/{sb.shop_id}/receipts", timeout=5,
                                params={"limit": 100, "offset": offset},
                                headers={"x-api-key": sb.api_key, "Authorization": f"Bearer {token}"}).json()

        first = page(0)
        assert first["count"] == 100 and len(first["results"]) == 100
        assert page(100) == {"count": 100, "results": []}
        assert len(page(99)["results"]) == 1


def test_other_shop_is_404(api) -> None:
    r = api("GET", "/v3/application/shops/1/receipts")
    assert r.status_code == 404 and "error" in r.json()


def test_update_receipt_is_form_only_and_bumps(sandbox: Sandbox, api) -> None:
    rid = next(r["receipt_id"] for r in all_receipts(sandbox) if r["status"] == "Paid")
    before = sandbox.receipt(rid)
    sandbox.advance(60)
    r = api("PUT", f"{RECEIPTS}/{rid}", data={"was_shipped": "true"})
    assert r.status_code == 200
    body = r.json()
    assert body["is_shipped"] is True and body["status"] == "Completed"
    assert body["update_timestamp"] == body["updated_timestamp"] == before["update_timestamp"] + 60 or \
        body["update_timestamp"] > before["update_timestamp"]
    bad = api("PUT", f"{RECEIPTS}/{rid}", json={"was_shipped": True})
    assert bad.status_code == 400


def test_create_shipment(sandbox: Sandbox, api) -> None:
    paid = next(r for r in all_receipts(sandbox) if r["status"] == "Paid")
    r = api("POST", f"{RECEIPTS}/{paid['receipt_id']}/tracking",
            json={"tracking_code": "TRK1", "carrier_name": "dhl", "note_to_buyer": "Enjoy"})
    body = r.json()
    assert r.status_code == 200 and body["is_shipped"] and body["shipments"][0]["tracking_code"] == "TRK1"
    canceled = next(r for r in all_receipts(sandbox) if r["status"] == "Canceled")
    assert api("POST", f"{RECEIPTS}/{canceled['receipt_id']}/tracking", json={}).status_code == 409
    half = api("POST", f"{RECEIPTS}/{paid['receipt_id']}/tracking", json={"tracking_code": "x"})
    assert half.status_code == 400


def test_admin_mutations_bump_update_timestamp_like_etsy(sandbox: Sandbox) -> None:
    paid = [r["receipt_id"] for r in all_receipts(sandbox) if r["status"] == "Paid"]
    for action, status in ((sandbox.cancel, "Canceled"), (sandbox.complete, "Completed"),
                           (lambda i: sandbox.refund(i, partial=True), "Partially Refunded"),
                           (sandbox.refund, "Fully Refunded")):
        rid = paid.pop()
        before = sandbox.receipt(rid)["update_timestamp"]
        sandbox.advance(100)
        after = action(rid)
        assert after["status"] == status
        assert after["update_timestamp"] == after["updated_timestamp"] == before + 100 or \
            after["update_timestamp"] > before


def test_refund_can_mimic_etsy_bug_513() -> None:
    with Sandbox(refund_bumps_update=False, clock=Clock(frozen=True)) as sb:
        rid = next(i for i in sb.receipt_ids if sb.receipt(i)["status"] == "Paid")
        before = sb.receipt(rid)
        sb.advance(500)
        after = sb.refund(rid)
        assert after["status"] == "Fully Refunded" and after["refunds"]
        assert after["update_timestamp"] == before["update_timestamp"]
        assert sb.refund(rid, bump=True)["update_timestamp"] > before["update_timestamp"]


def test_add_order_with_answers_and_uploads(sandbox: Sandbox, api) -> None:
    r = sandbox.add_order(PET_LISTING, buyer_name="Test Buyer", answers={7002: "Rex"}, uploads=[b"\xff\xd8x"])
    got = api("GET", f"{RECEIPTS}/{r['receipt_id']}").json()
    variations = {v["question_id"]: v for v in got["transactions"][0]["variations"]}
    assert variations[7002]["formatted_value"] == "Rex"
    assert got["status"] == "Paid" and got["name"] == "Test Buyer"
    url = variations[7001]["formatted_value"]
    assert url.startswith(sandbox.url + "/_files/")
    import requests

    assert requests.get(url, timeout=5).content == b"\xff\xd8x"


def test_seeded_personalization_shapes(sandbox: Sandbox) -> None:
    rs = all_receipts(sandbox)
    variations = [v for r in rs for t in r["transactions"] for v in t["variations"]]
    assert all(v["property_id"] == 54 and v["value_id"] is None for v in variations)
    legacy = [v for r in rs for t in r["transactions"] if t["listing_id"] == LEGACY_LISTING
              for v in t["variations"]]
    assert {v["formatted_name"] for v in legacy} == {"Personalization"}
    assert any(v["formatted_value"] == NOT_REQUESTED for v in legacy)
    family = [v for r in rs for t in r["transactions"] if t["listing_id"] == FAMILY_LISTING
              for v in t["variations"] if v["question_id"] == 7101]
    assert any(": " in v["formatted_name"] for v in family)
    assert any(r["is_gift"] for r in rs) and any(len(r["transactions"]) > 1 for r in rs)
    names = " ".join(r["name"] for r in rs)
    # A believable shop by default (Etsy's pre-escaped apostrophes are real, markup is not).
    assert "&#39;" in names and "Zoë Müller" in names and "<" not in names and "../" not in names
    assert all(r["buyer_email"] is None for r in rs)
    assert all(r["create_timestamp"] == r["created_timestamp"] for r in rs)


def test_seed_is_deterministic() -> None:
    with Sandbox(seed=5, clock=Clock(start=1_800_000_000, frozen=True)) as a, \
         Sandbox(seed=5, clock=Clock(start=1_800_000_000, frozen=True)) as b:
        ra = [a.receipt(i) for i in a.receipt_ids]
        rb = [b.receipt(i) for i in b.receipt_ids]
        strip = lambda rs, url: [str(r).replace(url, "") for r in rs]  # noqa: E731
        assert strip(ra, a.url) == strip(rb, b.url)


def test_hostile_seed_only_when_asked() -> None:
    with Sandbox(seed=1, hostile=True, clock=Clock(frozen=True)) as sb:
        rs = [sb.receipt(i) for i in sb.receipt_ids]
        names = " ".join(r["name"] for r in rs)
        messages = " ".join(r["message_from_buyer"] or "" for r in rs)
        assert "<script>" in names and "../" in names and "\u202e" in names and "onerror" in messages
