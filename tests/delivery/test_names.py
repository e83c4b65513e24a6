"""Deliverable names from a template: fields, Etsy's 70 characters at a word boundary, unique, safe."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaalwatch.delivery.names import fill, is_safe_name, listing_short, name_fields

TITLE = "Custom Pet Portrait from Photo, Digital Dog Illustration, Personalized Cat Painting | Printable Wall Art"


def _fields(**overrides: object) -> dict[str, str]:
    base = {"receipt_id": 3012345678, "buyer": "Zoë Müller", "title": TITLE,
            "answers": {"Pet name": "Mr Wigglesworth", "Background colour": "sage"}, "item": None,
            "variant": "print 8x10"}
    base.update(overrides)
    return name_fields(base["receipt_id"], base["buyer"], base["title"], base["answers"],  # type: ignore[arg-type]
                       item=base["item"], variant=base["variant"])  # type: ignore[arg-type]


def test_every_field_fills_in() -> None:
    name = fill("{receipt_id} {buyer_first} {answer:Pet name} {listing_short} {variant}", _fields(), "pdf",
                max_length=200, taken=set())
    assert name == "3012345678 Zoe Mr Wigglesworth Custom Pet Portrait from Photo print 8x10.pdf"


def test_answer_is_found_by_question_whatever_the_spelling() -> None:
    assert fill("{answer:pet NAME} {variant}", _fields(), "png", max_length=70, taken=set()) == \
        "Mr Wigglesworth print 8x10.png"
    assert fill("{receipt_id} {answer:Not asked}", _fields(), "png", max_length=70, taken=set()) == "3012345678.png"


def test_listing_short_is_the_title_up_to_its_first_separator() -> None:
    assert listing_short(TITLE) == "Custom Pet Portrait from Photo"
    assert listing_short("Family Portrait - Digital - Gift") == "Family Portrait"
    assert listing_short("A, B") == "A, B"  # too short a head: the whole title


def test_too_long_loses_whole_words_of_the_title_not_the_variant() -> None:
    name = fill("{receipt_id} {listing} {item} {variant}", _fields(item=2), "pdf", max_length=70, taken=set())
    assert len(name) <= 70 and name.endswith(" item 2 print 8x10.pdf")
    kept = name.removeprefix("3012345678 ").removesuffix(" item 2 print 8x10.pdf")
    assert TITLE.replace(",", "").startswith(kept) and TITLE.replace(",", "")[len(kept)] == " "  # a word boundary


def test_names_in_one_order_are_unique() -> None:
    taken: set[str] = set()
    for _ in range(3):
        taken.add(fill("{receipt_id} {listing_short}", _fields(), "png", max_length=70, taken=taken))
    stem = "3012345678 Custom Pet Portrait from Photo"
    assert taken == {f"{stem}.png", f"{stem} (2).png", f"{stem} (3).png"}


@given(buyer=st.text(max_size=80), answer=st.text(max_size=300), title=st.text(max_size=300),
       template=st.sampled_from(["{receipt_id} {buyer_first} {answer:Pet name} {variant}", "{answer:Pet name}",
                                 "../{buyer_first}/{listing}", "{listing_short} {item} {variant}"]),
       taken=st.sets(st.text(max_size=70), max_size=4))
def test_hostile_text_gives_a_short_safe_unique_name(buyer: str, answer: str, title: str, template: str,
                                                      taken: set[str]) -> None:
    fields = name_fields(42, buyer, title, {"Pet name": answer}, item=3, variant="web")
    name = fill(template, fields, "jpg", max_length=70, taken=taken)
    assert len(name) <= 70 and is_safe_name(name) and name.endswith(".jpg")
    assert "/" not in name and ".." not in name
    assert name.casefold() not in {t.casefold() for t in taken}
