"""``sandbox --data``: recorded Etsy bodies of every shape are placed as they are, and bad ones refused.

The recordings in ``tests/data/etsy/recorded`` are hand-made in Etsy's v3 format (see the README there):
pages, bare arrays and single objects of receipts, transactions, listings, images and personalization,
with timestamps as Etsy sends them (epoch integers) next to what proxies and client libraries make of
them (ISO-8601 with ``Z``, with an offset, with milliseconds; numeric strings).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from kaalwatch.errors import ConfigError
from kaalwatch.sandbox import Clock, Sandbox
from tests.support.openapi import validate_response

RECORDED = Path(__file__).resolve().parents[1] / "data" / "etsy" / "recorded"
SHOP_ID, SELLER = 41502293, 812345678
PET, FAMILY, COUPLE = 1587203411, 1587209926, 1190456781
RECEIPTS = list(range(3012350001, 3012350008))


def recorded(name: str) -> object:
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


def moment(value: object) -> int:
    """The test's own reading of a recorded timestamp (independent of kaalwatch's reader)."""
    if isinstance(value, int):
        return value
    assert isinstance(value, str)
    if value.isdigit():
        return int(value)
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The replayed shop (overrides conftest's seeded one, so ``api`` talks to it)."""
    sb = Sandbox(data_dir=RECORDED, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000)
    sb.start()
    yield sb
    sb.stop()


def test_every_recorded_shape_is_placed(sandbox: Sandbox) -> None:
    assert (sandbox.shop_id, sandbox.user_id) == (SHOP_ID, SELLER)
    assert sandbox.receipt_ids == RECEIPTS
    assert sorted(sandbox.shop.listings) == sorted([PET, FAMILY, COUPLE])
    # Transactions saved on their own (a page, a single object, a bare array) sit inside their receipts.
    assert sandbox.receipt(3012350004)["transactions"] == recorded("transactions_3012350004.json")["results"]  # type: ignore[index]
    r5 = sandbox.receipt(3012350005)["transactions"]
    assert r5 == [recorded("transaction_4400000051.json"), *recorded("transactions_3012350005_rest.json")]  # type: ignore[misc]
    # Images: embedded in getListing, a getListingImages page, a bare array.
    images = {lid: [i["listing_image_id"] for i in sandbox.shop.listing_images(lid)["results"]]
              for lid in (PET, FAMILY, COUPLE)}
    assert images == {PET: [6512030001, 6512030002], FAMILY: [6512090001, 6512090002], COUPLE: [6511900001]}
    # Personalization: embedded, a getListingPersonalization body, a bare array of questions.
    questions = {lid: [q["question_id"] for q in sandbox.shop.listing_personalization(lid)["personalization_questions"]]
                 for lid in (PET, FAMILY, COUPLE)}
    assert questions == {PET: [3301, 3302, 3303], FAMILY: [3401, 3402], COUPLE: [3501]}
    # Served as recorded: the spelling is the recording's, nothing normalised on the way out.
    page = recorded("getShopReceipts_page1.json")
    assert sandbox.receipt(3012350002) == page["results"][1]  # type: ignore[index]
    assert isinstance(sandbox.receipt(3012350002)["updated_timestamp"], str)


def as_etsy_sends_it(node: object) -> object:
    """A recording with its respelled timestamps made integers again, and its float coupons (a real-traffic
    quirk the document does not allow, NOTES) whole."""
    if isinstance(node, dict):
        return {k: (moment(v) if k.endswith(("_timestamp", "_date")) and isinstance(v, str)
                    else int(v) if k.endswith("_coupon") and isinstance(v, float) else as_etsy_sends_it(v))
                for k, v in node.items()}
    return [as_etsy_sends_it(n) for n in node] if isinstance(node, list) else node


@pytest.mark.contract
@pytest.mark.parametrize(("name", "operation"), [
    ("getShopReceipts_page1.json", "getShopReceipts"),
    ("transactions_3012350004.json", "getShopReceiptTransactionsByReceipt"),
    ("listing_1587203411_with_images_personalization.json", "getListing"),
    ("listings_batch.json", "getListingsByListingIds"), ("images_1587209926.json", "getListingImages"),
    ("personalization_1587209926.json", "getListingPersonalization"), ("shop.json", "getShop"), ("me.json", "getMe"),
])
def test_each_recording_is_etsys_format_apart_from_the_timestamp_spelling(name: str, operation: str) -> None:
    validate_response(operation, 200, as_etsy_sends_it(recorded(name)), strict=True)


@pytest.mark.contract
def test_receipts_saved_without_their_transactions_are_whole_once_replayed(sandbox: Sandbox) -> None:
    for rid in (3012350004, 3012350005):
        assert "transactions" not in recorded(f"receipt_{rid}.json")  # type: ignore[operator]
        validate_response("getShopReceipt", 200, as_etsy_sends_it(sandbox.receipt(rid)), strict=True)


@pytest.mark.contract
@pytest.mark.parametrize(("name", "operation"), [
    ("receipts_from_client_library.json", "getShopReceipt"), ("transactions_3012350005_rest.json",
                                                              "getShopReceiptTransaction"),
    ("listings_from_client_library.json", "getListing"), ("images_1190456781.json", "getListingImage"),
])
def test_each_item_of_a_bare_array_is_etsys_format(name: str, operation: str) -> None:
    items = recorded(name)
    assert isinstance(items, list) and items
    for item in items:
        validate_response(operation, 200, as_etsy_sends_it(item), strict=True)


def test_one_page_mixes_spellings_as_the_issue_saw() -> None:
    stamps = [r["updated_timestamp"] for r in recorded("getShopReceipts_page1.json")["results"]]  # type: ignore[index]
    assert {type(s) for s in stamps} == {int, str}


def test_mixed_spellings_filter_sort_and_page_like_etsy(sandbox: Sandbox,
                                                       api: Callable[..., requests.Response]) -> None:
    everything = [sandbox.receipt(r) for r in RECEIPTS]
    updated = {r["receipt_id"]: moment(r["updated_timestamp"]) for r in everything}
    created = {r["receipt_id"]: moment(r["created_timestamp"]) for r in everything}
    seen: list[int] = []
    for offset in range(0, 7, 3):
        r = api("GET", "/v3/application/shops/{shop_id}/receipts",
                params={"sort_on": "updated", "sort_order": "asc", "limit": 3, "offset": offset})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == 7
        seen += [x["receipt_id"] for x in r.json()["results"]]
    assert seen == sorted(updated, key=updated.get)  # type: ignore[arg-type]
    newest = api("GET", "/v3/application/shops/{shop_id}/receipts", params={"sort_on": "created"}).json()
    assert [x["receipt_id"] for x in newest["results"]] == sorted(created, key=created.get, reverse=True)  # type: ignore[arg-type]
    cut = updated[3012350002]
    since = api("GET", "/v3/application/shops/{shop_id}/receipts", params={"min_last_modified": cut}).json()
    assert {x["receipt_id"] for x in since["results"]} == {rid for rid, t in updated.items() if t >= cut}
    assert api("GET", "/v3/application/shops/{shop_id}/receipts/3012350004/transactions").json()["count"] == 1


@pytest.mark.parametrize(("rid", "action", "body"), [
    (3012350002, "touch", {}),  # ISO update time next to integer create times
    (3012350003, "complete", {}),  # ISO with an offset; its line items in ISO with milliseconds
    (3012350007, "refund", {"partial": True}),  # ISO "Z", already refunded in full once
    (3012350004, "cancel", {}),  # numeric strings, transactions from their own file
])
def test_admin_changes_to_recorded_receipts_answer_and_keep_their_spelling(sandbox: Sandbox, rid: int, action: str,
                                                                           body: dict[str, object]) -> None:
    before = sandbox.receipt(rid)
    sandbox.clock.advance(3600)
    r = requests.post(f"{sandbox.url}/_sandbox/receipts/{rid}/{action}", json=body, timeout=5)
    assert r.status_code == 200, r.text
    after = r.json()
    for key in ("updated_timestamp", "update_timestamp"):
        assert type(after[key]) is type(before[key])
        assert moment(after[key]) == max(moment(before[key]), int(sandbox.clock.now()))
        assert moment(after[key]) > moment(before[key])
    assert sandbox.receipt(rid) == after


def write(folder: Path, files: dict[str, object]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return folder


def receipt_alone() -> dict[str, object]:
    r = copy.deepcopy(recorded("getShopReceipts_page1.json")["results"][0])  # type: ignore[index]
    return r  # type: ignore[no-any-return]


def test_a_transactions_page_is_attached_never_taken_for_listings(tmp_path: Path) -> None:
    r = receipt_alone()
    tx = r["transactions"][0]  # type: ignore[index]
    changed = {**tx, "quantity": 3}
    data = write(tmp_path / "d", {"a_transactions.json": {"count": 1, "results": [changed]}, "b_receipt.json": r})
    with Sandbox(data_dir=data, clock=Clock(frozen=True)) as sb:
        seeded = Sandbox(seed=1, clock=Clock(frozen=True))
        with seeded:
            assert sorted(sb.shop.listings) == sorted(seeded.shop.listings)  # the seeded catalog, untouched
        assert sb.receipt(r["receipt_id"])["transactions"] == [changed]  # type: ignore[arg-type]


V2_TRANSACTIONS = {"count": 1, "results": [{"transaction_id": 1234567, "title": "Pet portrait", "listing_id": 1,
                                            "receipt_id": 42, "creation_tsz": 1500000000, "price": "45.00"}],
                   "params": {"receipt_id": "42"}, "type": "Transaction", "pagination": {}}


@pytest.mark.parametrize(("body", "needle"), [
    (V2_TRANSACTIONS, "an Etsy API v2 body (type 'Transaction')"),
    (V2_TRANSACTIONS["results"], "item 1 of 1 is an Etsy API v2 object"),
    ({"error": "Invalid API key"}, "an Etsy error answer ('Invalid API key'), not data"),
    ({"order": 5, "buyer": "x"}, "the body is an object with keys buyer, order, which is none of receipts"),
    ([1, 2, 3], "item 1 of 3 is a JSON number"),
    ('"just text"', "a JSON string, not an Etsy response body"),
    ("{'receipt_id': 1}", "cannot read sandbox data file recorded_thing.json: Expecting property name"),
    ({"count": 1, "results": [{"receipt_id": "abc", "status": "Paid"}]}, "receipt_id 'abc', not a whole number"),
    ([{"transaction_id": 9, "receipt_id": 77, "title": "x", "listing_id": 1}],
     "transaction 9 belongs to receipt 77, which no file holds"),
])
def test_a_body_that_cannot_be_placed_is_refused_naming_the_file(tmp_path: Path, body: object, needle: str) -> None:
    data = write(tmp_path / "d", {"recorded_thing.json": body})
    with pytest.raises(ConfigError) as caught:
        Sandbox(data_dir=data).start()
    assert "sandbox data file recorded_thing.json: " in str(caught.value) and needle in str(caught.value)


def test_questions_need_a_listing_id_in_the_name_and_a_folder_needs_json(tmp_path: Path) -> None:
    data = write(tmp_path / "q", {"questions.json": {"personalization_questions": []}})
    with pytest.raises(ConfigError, match=r"questions\.json: personalization questions, but no listing id"):
        Sandbox(data_dir=data).start()
    with pytest.raises(ConfigError, match=r"no \.json files"):
        Sandbox(data_dir=write(tmp_path / "empty", {"notes.txt": "hello"})).start()


def test_the_same_receipt_twice_keeps_the_newer_state(tmp_path: Path) -> None:
    old = receipt_alone()
    new = {**copy.deepcopy(old), "status": "Completed", "is_shipped": True,
           "updated_timestamp": "2026-12-01T00:00:00Z", "update_timestamp": "2026-12-01T00:00:00Z"}
    for order in (("a.json", "b.json"), ("b.json", "a.json")):
        data = write(tmp_path / "".join(order), {order[0]: [new], order[1]: {"count": 1, "results": [old]}})
        with Sandbox(data_dir=data, clock=Clock(frozen=True)) as sb:
            assert sb.receipt(old["receipt_id"])["status"] == "Completed"  # type: ignore[arg-type]


def test_new_orders_in_a_replayed_shop_sell_its_recorded_listings(sandbox: Sandbox) -> None:
    """``--orders-every`` and ``POST /_sandbox/orders`` pick from the recorded listings, not the seeded ones."""
    sold = set()
    for _ in range(8):
        r = requests.post(f"{sandbox.url}/_sandbox/orders", json={}, timeout=5)
        assert r.status_code == 201, r.text
        sold |= {t["listing_id"] for t in r.json()["transactions"]}
    assert sold and sold <= {PET, FAMILY, COUPLE}
