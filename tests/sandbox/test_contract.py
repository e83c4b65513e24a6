"""Contract: every sandbox response validates against Etsy's OpenAPI document; every request it served matches it."""

from __future__ import annotations

import copy

import pytest

from kaalwatch.sandbox import Sandbox
from kaalwatch.sandbox.seed import COUPLE_LISTING, PET_LISTING
from tests.support.openapi import (
    REAL_TRAFFIC_EXCEPTIONS,
    RequestMismatch,
    ResponseMismatch,
    assert_requests_documented,
    match_request,
    require_doc,
    validate_response,
)

pytestmark = pytest.mark.contract


@pytest.fixture(autouse=True)
def _doc() -> None:
    require_doc()


def check(op: str, response) -> dict:
    """Validate one live response strictly and hand back its body."""
    validate_response(op, response.status_code, response.json(), strict=True)
    return response.json()


def test_every_operation_and_every_receipt_validates(sandbox: Sandbox, api, tokens) -> None:
    check("ping", api("GET", "/v3/application/openapi-ping"))
    check("getMe", api("GET", "/v3/application/users/me"))
    check("getShop", api("GET", "/v3/application/shops/{shop_id}"))
    page = check("getShopReceipts", api("GET", "/v3/application/shops/{shop_id}/receipts",
                                        params={"limit": 100}))
    assert page["count"] == len(sandbox.receipt_ids) == len(page["results"])
    statuses = set()
    for rid in sandbox.receipt_ids:
        body = check("getShopReceipt", api("GET", f"/v3/application/shops/{{shop_id}}/receipts/{rid}"))
        statuses.add(body["status"])
        txs = check("getShopReceiptTransactionsByReceipt",
                    api("GET", f"/v3/application/shops/{{shop_id}}/receipts/{rid}/transactions"))
        assert txs["results"] == body["transactions"]
    # The seed covers every state the tool must handle, in real-traffic spelling.
    assert {"Paid", "Completed", "Canceled", "Fully Refunded", "Partially Refunded"} <= statuses
    for lid in sorted(sandbox.shop.listings):
        check("getListing", api("GET", f"/v3/application/listings/{lid}"))
        check("getListing", api("GET", f"/v3/application/listings/{lid}",
                                params={"includes": "Images,Personalization,Shop,User,Videos"}))
        check("getListingImages", api("GET", f"/v3/application/listings/{lid}/images"))
        check("getListingPersonalization", api("GET", f"/v3/application/listings/{lid}/personalization"))
    ids = ",".join(map(str, sorted(sandbox.shop.listings)))
    batch = check("getListingsByListingIds", api("GET", "/v3/application/listings/batch",
                                                 params={"listing_ids": ids, "includes": "Images"}))
    assert batch["count"] == len(sandbox.shop.listings)
    rid = sandbox.receipt_ids[0]
    check("updateShopReceipt", api("PUT", f"/v3/application/shops/{{shop_id}}/receipts/{rid}",
                                   data={"was_shipped": "true"}))
    check("createReceiptShipment", api("POST", f"/v3/application/shops/{{shop_id}}/receipts/{rid}/tracking",
                                       json={"tracking_code": "1Z999", "carrier_name": "ups",
                                             "note_to_buyer": "Here you go"}))
    check("tokenScopes", api("POST", "/v3/application/scopes", data={"token": tokens.access_token}))


def test_error_bodies_validate(sandbox: Sandbox, api) -> None:
    check("getShopReceipt", api("GET", "/v3/application/shops/{shop_id}/receipts/1"))  # 404
    check("getShopReceipts", api("GET", "/v3/application/shops/{shop_id}/receipts",
                                 params={"limit": 101}))  # 400
    check("getListing", api("GET", "/v3/application/listings/999"))  # 404
    r = api("GET", "/v3/application/shops/{shop_id}/receipts", headers={"Authorization": "Bearer 1.nope"})
    assert r.status_code == 401
    check("getShopReceipts", r)


def test_every_request_served_matches_an_operation(sandbox: Sandbox, api, tokens) -> None:
    test_every_operation_and_every_receipt_validates(sandbox, api, tokens)
    served = [r.operation for r in sandbox.requests if r.operation not in ("file", "oauthConnect")]
    assert assert_requests_documented(sandbox.requests) == served
    assert len(set(served)) == 14  # 13 Etsy operations + the OAuth token endpoint


def test_undocumented_request_in_a_log_is_reported(sandbox: Sandbox, api) -> None:
    api("GET", "/v3/application/shops/{shop_id}/receipts", params={"status": "paid"})  # served, but wrong
    with pytest.raises(RequestMismatch, match="undocumented query parameter 'status'"):
        assert_requests_documented(sandbox.requests)


def test_validator_rejects_what_etsy_would_not_send(sandbox: Sandbox) -> None:
    good = sandbox.receipt(sandbox.receipt_ids[0])
    validate_response("getShopReceipt", 200, good, strict=True)
    broken = copy.deepcopy(good)
    broken["transactions"][0]["variations"][0]["property_id"] = "54"
    with pytest.raises(ResponseMismatch, match="property_id"):
        validate_response("getShopReceipt", 200, broken)
    missing = copy.deepcopy(good)
    del missing["created_timestamp"]
    validate_response("getShopReceipt", 200, missing)  # lenient: the doc has no required list
    with pytest.raises(ResponseMismatch, match="created_timestamp"):
        validate_response("getShopReceipt", 200, missing, strict=True)
    odd = dict(good, status="Shipped")
    with pytest.raises(ResponseMismatch, match="status"):
        validate_response("getShopReceipt", 200, odd)
    with pytest.raises(ResponseMismatch, match="documents no 418"):
        validate_response("getShopReceipt", 418, {})


def test_real_traffic_exceptions_are_the_only_relaxations() -> None:
    assert set(REAL_TRAFFIC_EXCEPTIONS) == {("ShopReceipt", "status")}
    validate_response("getShopReceipt", 200, {"status": "Fully Refunded"})
    validate_response("getShopReceipt", 200, {"status": "fully refunded"})


@pytest.mark.parametrize(("method", "path", "query", "op"), [
    ("GET", "https://openapi.etsy.com/v3/application/users/me", {}, "getMe"),
    ("GET", "/v3/application/shops/1/receipts", {"min_last_modified": "1700000000", "sort_on": "updated",
                                                 "sort_order": "asc", "limit": "100", "offset": "0",
                                                 "was_paid": "true", "was_canceled": "false"},
     "getShopReceipts"),
    ("GET", "/v3/application/listings/batch", {"listing_ids": ["1", "2"], "includes": "Images"},
     "getListingsByListingIds"),
    ("GET", f"/v3/application/listings/{PET_LISTING}", {"includes": "Personalization"}, "getListing"),
    ("GET", f"/v3/application/listings/{COUPLE_LISTING}/personalization", {}, "getListingPersonalization"),
    ("POST", "/v3/public/oauth/token", {}, "oauthToken"),
])
def test_match_request_accepts_documented_requests(method, path, query, op) -> None:
    assert match_request(method, path, query) == op


@pytest.mark.parametrize(("method", "path", "query", "needle"), [
    ("GET", "/v3/application/shops/1/receipts", {"status": "paid"}, "undocumented query parameter"),
    ("GET", "/v3/application/shops/1/receipts", {"limit": "101"}, "maximum"),
    ("GET", "/v3/application/shops/1/receipts", {"min_created": "5"}, "minimum"),
    ("GET", "/v3/application/shops/1/receipts", {"was_paid": "yes"}, "boolean"),
    ("GET", "/v3/application/shops/1/receipts", {"sort_on": "status"}, "is not one of"),
    ("GET", "/v3/application/shops/0/receipts", {}, "minimum"),
    ("GET", "/v3/application/shops/abc", {}, "integer"),
    ("GET", "/v3/application/listings/batch", {}, "required query parameter"),
    ("GET", "/v3/application/listings/batch", {"listing_ids": "1,x"}, "integer"),
    ("GET", "/v3/application/listings/1", {"includes": "Everything"}, "is not one of"),
    ("DELETE", "/v3/application/users/me", {}, "not documented"),
    ("GET", "/v3/application/nope", {}, "no documented path"),
    ("POST", "/v3/public/oauth/token", {"x": "1"}, "no query parameters"),
])
def test_match_request_rejects_misuse(method, path, query, needle) -> None:
    with pytest.raises(RequestMismatch, match=needle):
        match_request(method, path, query)


def test_match_request_checks_bodies() -> None:
    assert match_request("PUT", "/v3/application/shops/1/receipts/2", form={"was_shipped": "true"},
                         content_type="application/x-www-form-urlencoded") == "updateShopReceipt"
    with pytest.raises(RequestMismatch, match="undocumented body fields"):
        match_request("PUT", "/v3/application/shops/1/receipts/2", form={"status": "completed"},
                      content_type="application/x-www-form-urlencoded")
    with pytest.raises(RequestMismatch, match="body must be one of"):
        match_request("PUT", "/v3/application/shops/1/receipts/2", form={"was_shipped": True},
                      content_type="application/json")
    with pytest.raises(RequestMismatch, match="form-encoded"):
        match_request("POST", "/v3/public/oauth/token", form={"grant_type": "x"},
                      content_type="application/json")
