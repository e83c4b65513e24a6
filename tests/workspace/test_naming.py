"""Folder names from hostile buyer text: always one safe, readable path component."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from kaalwatch.naming import clean_text, format_name, safe_component, unique_name

RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}


def assert_safe(name: str) -> None:
    assert name, "empty name"
    assert "/" not in name and "\\" not in name
    assert name not in (".", "..") and not name.startswith(".")
    assert not any(ord(c) < 32 or c == "\x7f" for c in name)
    assert not any(c in name for c in "\u202e\u202d\u200f\u200e\u2066\u2067\u2068\u2069")
    assert len(name.encode("utf-8")) <= 120
    assert name.split(".")[0].lower() not in RESERVED
    assert not name.endswith((" ", "."))
    assert not any(c in name for c in '<>:"|?*')


@given(st.text(max_size=600))
@settings(max_examples=400, deadline=None)
def test_any_text_becomes_a_safe_component(text: str) -> None:
    assert_safe(safe_component(text))


@given(st.text(max_size=300), st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_buyer_and_listing_make_a_safe_folder_name(buyer: str, listing: str) -> None:
    assert_safe(format_name("{receipt_id} {buyer} - {listing}", {"receipt_id": 42, "buyer": buyer, "listing": listing}))


def test_known_tricks(tmp_path: Path) -> None:
    cases = {
        "../../etc": "-..-etc",
        "..": "untitled",
        "CON": "_CON",
        "con.txt": "_con.txt",
        "LPT1": "_LPT1",
        "line\nbreak\r\nhere": "line break here",
        "tab\there": "tab here",
        "\u202eevil\u202c": "evil",
        "Zoë 🐶": "Zoë 🐶",
        "a:b*c?": "a-b-c-",
        "  trailing dots... ": "trailing dots",
    }
    for text, expected in cases.items():
        assert safe_component(text) == expected, text
        (tmp_path / safe_component(text)).mkdir()  # and the filesystem accepts it


def test_long_names_are_cut_on_a_character_boundary() -> None:
    name = safe_component("é" * 500)
    assert len(name.encode()) <= 120
    assert name == "é" * 60


def test_template_keys_typed_by_a_buyer_stay_literal() -> None:
    name = format_name("{receipt_id} {buyer}", {"receipt_id": 7, "buyer": "{receipt_id} {{7*7}} {buyer.__class__}"})
    assert name == "7 {receipt_id} {{7-7}} {buyer.__class__}"


def test_unknown_template_keys_are_left_as_written() -> None:
    assert format_name("{receipt_id} {nope}", {"receipt_id": 1}) == "1 {nope}"


def test_unique_name_counts_up_case_insensitively() -> None:
    assert unique_name("Ada", {"ada", "Ada (2)"}) == "Ada (3)"
    assert unique_name("Bob", {"ada"}) == "Bob"


def test_clean_text_keeps_words_apart_and_caps_length() -> None:
    assert clean_text("a\u2028b\x00c", max_chars=10) == "a bc"
    assert len(clean_text("x" * 10_000)) == 200


def test_clean_text_for_reading_ends_a_cut_with_an_ellipsis() -> None:
    assert clean_text("Ann\x1cMarie\u202e  \t Lee", max_chars=40, ellipsis=True) == "Ann Marie Lee"
    assert clean_text("word " * 20, max_chars=12, ellipsis=True) == "word word w…"
    assert clean_text("short", max_chars=12, ellipsis=True) == "short"
