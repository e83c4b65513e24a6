"""The parser against Etsy's real-traffic quirks (NOTES.md) and the sandbox's seeded receipts."""

from __future__ import annotations

import pytest

from kaalwatch.etsy.parse import (
    ParseError,
    Question,
    Variation,
    build_order,
    join_answers,
    parse_listing,
    parse_questions,
    parse_receipt,
    split_urls,
    updated_epoch,
)
from kaalwatch.etsy.timestamps import epoch_seconds
from kaalwatch.settings import Settings

PET_QUESTIONS = (
    Question(7001, "Photos of your pet", "unlabeled_upload", True),
    Question(7002, "Pet's name (optional)", "text_input", False),
    Question(7003, "Background colour", "dropdown", True),
)


def v(qid: int | None, name: str, value: str, prop: int | None = 54) -> Variation:
    return Variation(property_id=prop, question_id=qid, name=name, value=value)


def receipt(**over: object) -> dict:
    base = {
        "receipt_id": 31, "status": "Paid", "is_paid": True, "is_shipped": False, "name": "O&#39;Brien",
        "buyer_user_id": 5, "message_from_buyer": "It&#39;s for &quot;Nana&quot;\r\nthanks", "is_gift": False,
        "gift_message": None, "create_timestamp": 1_760_000_000, "created_timestamp": 1_760_000_000,
        "update_timestamp": 1_760_000_100, "updated_timestamp": 1_760_000_100, "unknown_new_key": {"x": 1},
        "grandtotal": {"amount": 100, "divisor": 100, "currency_code": "USD"}, "buyer_coupon": 0,
        "transactions": [{"transaction_id": 41, "listing_id": 1500000001, "title": "Pet &amp; cat",
                          "quantity": 1, "sku": "", "variations": [], "expected_ship_date": 1_760_600_000}],
    }
    base.update(over)
    return base


def test_receipt_quirks_are_tolerated_and_text_cleaned() -> None:
    r = parse_receipt(receipt())
    assert r.receipt_id == 31 and r.status == "Paid" and r.status_key == "paid" and r.is_open_work
    assert r.buyer_name == "O'Brien"
    assert r.message_from_buyer == 'It\'s for "Nana"\nthanks'
    assert r.gift_message == ""
    assert r.updated == 1_760_000_100
    assert r.transactions[0].title == "Pet & cat" and r.transactions[0].sku is None


def test_only_one_spelling_of_timestamps_and_string_ids() -> None:
    data = receipt(receipt_id="31", update_timestamp=None, create_timestamp=None)
    r = parse_receipt(data)
    assert r.receipt_id == 31 and r.updated == 1_760_000_100 and r.created is not None


# 1_760_000_100 is 2025-10-09T08:55:00Z; every spelling below names that moment.
@pytest.mark.parametrize("spelling", [
    1_760_000_100, "1760000100", " 1760000100 ", 1_760_000_100.0, "1760000100.0", 1_760_000_100_000,
    "2025-10-09T08:55:00Z", "2025-10-09T08:55:00+00:00", "2025-10-09T08:55:00.000Z", "2025-10-09T10:55:00+02:00",
    "2025-10-09 08:55:00", "2025-10-09T08:55:00.123456789Z", "Thu, 09 Oct 2025 08:55:00 GMT",
])
def test_every_timestamp_spelling_is_read_for_every_field(spelling: object) -> None:
    data = receipt(update_timestamp=spelling, updated_timestamp=spelling, create_timestamp=spelling,
                   created_timestamp=spelling)
    data["transactions"][0]["expected_ship_date"] = spelling
    r = parse_receipt(data)
    assert r.updated == 1_760_000_100
    assert r.created is not None and int(r.created.timestamp()) == 1_760_000_100
    assert r.transactions[0].expected_ship == r.created
    assert updated_epoch(data) == 1_760_000_100


def test_an_iso_update_time_next_to_epoch_integers_is_the_update_time() -> None:
    # What a proxy that rewrites one spelling leaves behind: the other keys still integers.
    data = receipt(updated_timestamp="2025-10-09T09:00:00Z", update_timestamp=None)
    r = parse_receipt(data)
    assert r.updated == 1_760_000_400 != int(r.created.timestamp())  # type: ignore[union-attr]


def test_the_ed_spelling_wins_and_the_other_is_read_when_it_is_unreadable() -> None:
    both = receipt(updated_timestamp=1_760_000_500, update_timestamp=1_760_000_100,
                   created_timestamp=1_760_000_050, create_timestamp=1_760_000_000)
    r = parse_receipt(both)
    assert r.updated == 1_760_000_500 and int(r.created.timestamp()) == 1_760_000_050  # type: ignore[union-attr]
    broken = receipt(updated_timestamp="soon", update_timestamp="2025-10-09T08:55:00Z",
                     created_timestamp=0, create_timestamp="1760000000")
    r = parse_receipt(broken)
    assert r.updated == 1_760_000_100 and int(r.created.timestamp()) == 1_760_000_000  # type: ignore[union-attr]


@pytest.mark.parametrize("junk", [None, "", "soon", True, -5, 0, "NaN", float("nan"), [], {"t": 1}])
def test_unreadable_timestamps_are_missing_not_fatal(junk: object) -> None:
    data = receipt(update_timestamp=junk, updated_timestamp=junk, create_timestamp=junk, created_timestamp=junk)
    r = parse_receipt(data)
    assert r.updated == 0 and r.created is None and epoch_seconds(junk) is None


@pytest.mark.parametrize("status, cancelled, completed", [
    ("Canceled", True, False), ("fully refunded", True, False), ("Partially Refunded", False, False),
    ("Completed", False, True), ("completed", False, True),
])
def test_statuses_compare_case_insensitively(status: str, cancelled: bool, completed: bool) -> None:
    r = parse_receipt(receipt(status=status))
    assert (r.is_cancelled, r.is_completed) == (cancelled, completed)


def test_strict_only_on_ids() -> None:
    with pytest.raises(ParseError, match="receipt_id"):
        parse_receipt(receipt(receipt_id=None))
    with pytest.raises(ParseError, match="transaction_id"):
        parse_receipt(receipt(transactions=[{"title": "x"}]))
    with pytest.raises(ParseError):
        parse_receipt(["not", "a", "receipt"])
    # Everything else may be missing.
    minimal = parse_receipt({"receipt_id": 9, "is_paid": True})
    assert minimal.status == "Paid" and minimal.transactions == () and minimal.buyer_name == ""


def test_answers_joined_by_id_with_uploads_split_on_commas_and_newlines() -> None:
    answers, uploads = join_answers([
        v(7001, "Photos of your pet", "https://x.test/a.jpg, https://x.test/b.jpg\nhttps://x.test/c.jpg"),
        v(7003, "Background colour", "Sage"),
        v(None, "Size", "A4", prop=200),
    ], PET_QUESTIONS)
    by_q = {a.question: a for a in answers}
    assert by_q["Photos of your pet"].files == ["https://x.test/a.jpg", "https://x.test/b.jpg", "https://x.test/c.jpg"]
    assert by_q["Background colour"].answer == "Sage"
    assert by_q["Pet's name (optional)"].answer == ""  # skipped optional question: recorded as empty
    assert by_q["Size"].kind == "variation"
    assert [u.url for u in uploads] == by_q["Photos of your pet"].files


def test_changed_question_id_falls_back_to_the_question_name() -> None:
    answers, _ = join_answers([v(9999, "Background colour", "Navy")], PET_QUESTIONS)
    colour = next(a for a in answers if a.question == "Background colour")
    assert colour.answer == "Navy"


def test_labeled_uploads_keep_their_labels() -> None:
    questions = (Question(7101, "A photo of each person", "labeled_upload", True),)
    answers, uploads = join_answers([
        v(7101, "A photo of each person: Mum", "https://x.test/1.jpg"),
        v(7101, "A photo of each person: Dad", "https://x.test/2.jpg"),
    ], questions)
    assert [(u.label, u.url) for u in uploads] == [("Mum", "https://x.test/1.jpg"), ("Dad", "https://x.test/2.jpg")]
    assert answers[0].answer == "Mum, Dad"


def test_legacy_not_requested_is_an_empty_answer() -> None:
    answers, uploads = join_answers([v(None, "Personalization", "Not requested on this item.")], ())
    assert answers[0].question == "Personalization" and answers[0].answer == "" and uploads == []


def test_split_urls_ignores_text_between() -> None:
    assert split_urls("see https://a.test/x.jpg and\nhttp://b.test/y.png,") == ["https://a.test/x.jpg",
                                                                             "http://b.test/y.png"]


def test_listing_main_image_is_rank_one() -> None:
    info = parse_listing({"listing_id": 7, "title": "T &amp; U", "images": [
        {"rank": 2, "url_fullxfull": "https://x.test/2.jpg"}, {"rank": 1, "url_fullxfull": "https://x.test/1.jpg"}]})
    assert info.main_image_url == "https://x.test/1.jpg" and info.title == "T & U"
    questions = parse_questions(
        {"personalization_questions": [{"question_id": 1, "question_text": "Name", "question_type": "text_input"}]})
    assert questions[0].text == "Name"


def test_build_order_maps_jobs_and_workflows(settings: Settings) -> None:
    data = receipt(transactions=[
        {"transaction_id": 41, "listing_id": 1, "title": "Custom Pet Portrait", "quantity": 1},
        {"transaction_id": 42, "listing_id": 2, "title": "Family portrait", "quantity": 2,
         "expected_ship_date": 1_760_600_000},
    ])
    new = build_order(parse_receipt(data), {}, settings)
    assert [j.job_id for j in new.order.jobs] == ["41", "42"]
    assert [j.workflow for j in new.order.jobs] == ["pet portrait", "family portrait"]
    assert new.order.jobs[1].quantity == 2 and new.needs_references == {"41": True, "42": True}
    assert new.order.buyer_name == "O'Brien" and new.order.ship_by is not None
