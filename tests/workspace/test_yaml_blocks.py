"""The manifest's YAML with kept record texts (``kaalwatch.yaml_blocks``) is PyYAML's dump of the whole, always.

Every test compares ``dump`` with ``plain_dump`` (PyYAML's dump with the manifest's options): with no text
kept, and again with every record's text kept from the dump before.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kaalwatch import yaml_blocks
from kaalwatch.yaml_blocks import dump, plain_dump


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    yaml_blocks._kept.clear()
    yield
    yaml_blocks._kept.clear()


def assert_same_twice(data: Any) -> None:
    expected = plain_dump(data)
    assert dump(data) == expected  # records dumped now
    assert dump(data) == expected  # records' kept texts


# Text as buyers and art tools write it: words that fold at the line width, quotes, YAML indicators,
# line breaks, tabs, control and bidi characters, emoji, digits that look like numbers or dates.
words = st.sampled_from(["portrait", "dog", "- item", "key: value", "#tag", "'quoted'", '"double"', "null",
                         "yes", "No", "1.5e3", "0x1F", "2026-11-29", "~", "&anchor", "*alias", "!tag", "{a}",
                         "[b]", "%", "@", "`", "|", ">", "?", ":", "\t", "\n", "\r\n", " ", "  ", "\u202e",
                         "\x07", "\ufeff", "日本語", "🎨", "é", "...", "---", "\\", "\u2028"])
texts = st.one_of(st.text(max_size=30), st.lists(words, max_size=60).map(" ".join),
                  st.lists(words, max_size=30).map("".join))
scalars = st.one_of(texts, st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.none())
keys = st.one_of(st.text(string.ascii_lowercase + "_", min_size=1, max_size=14), texts)
record_values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(keys, scalars, max_size=3))
records = st.dictionaries(keys, record_values, max_size=8)


def documents() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(scalars, records),
        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
        max_leaves=40,
    )


@settings(max_examples=300, deadline=None)
@given(documents())
def test_any_document_is_pyyamls_dump(data: Any) -> None:
    assert_same_twice(data)


@settings(max_examples=150, deadline=None)
@given(versions=st.lists(records, max_size=6), history=st.lists(records, max_size=6),
       top=st.dictionaries(keys, scalars, max_size=4), depth=st.integers(0, 30))
def test_manifest_shaped_documents_at_every_depth_are_pyyamls_dump(versions: list[dict[str, Any]],
                                                                    history: list[dict[str, Any]],
                                                                    top: dict[str, Any], depth: int) -> None:
    job: Any = {"job_id": "1", "versions": versions}
    for level in range(depth):  # records ever further in, up to and past MAX_COLUMN
        job = {f"level{level}": [job] if level % 2 else job}
    assert_same_twice({"schema": 3, **top, "jobs": [job], "history": history})


def test_a_long_order_is_its_own_text_and_reuses_what_did_not_change() -> None:
    message = "Please make the background a soft blue, like the sky in the photo I sent; " * 4
    order: dict[str, Any] = {
        "schema": 3, "receipt_id": 3149042367, "buyer_name": "Zoë O'Brien: \"Zo\"", "gift_message": message,
        "jobs": [{"job_id": "31490423671", "answers": [{"question": "Names?", "answer": message}],
                  "versions": [{"number": n, "source_name": f"portrait v{n}.psd", "sha256": f"{n:064x}",
                                "size": 1000 * n, "note": None if n % 3 else message, "conflict": n == 4}
                               for n in range(1, 35)]}],
        "history": [{"at": f"2026-11-29T10:{n % 60:02d}:00+00:00", "event": "version", "detail": message[: n * 3]}
                    for n in range(70)],
    }
    assert_same_twice(order)
    kept = len(yaml_blocks._kept)
    assert kept == 1 + 34 + 70  # the answer, every version, every event
    order["jobs"][0]["versions"].append({"number": 35, "source_name": "portrait v35.psd"})
    order["history"].append({"at": "2026-11-29T11:00:00+00:00", "event": "version"})
    assert dump(order) == plain_dump(order)
    assert len(yaml_blocks._kept) == kept + 2  # only the new records were dumped


def test_a_record_changed_in_place_is_dumped_again() -> None:
    order = {"history": [{"event": "proof sent", "note": None}]}
    assert dump(order) == plain_dump(order)
    order["history"][0]["note"] = "buyer asked for more blue"
    assert dump(order) == plain_dump(order) and "more blue" in dump(order)


def test_an_object_met_twice_is_left_to_pyyaml_and_its_aliases() -> None:
    shared = {"event": "same"}
    data = {"a": [shared], "b": [shared]}
    assert dump(data) == plain_dump(data) and "&id001" in dump(data)
    listed = ["x"]
    data2 = {"a": [{"tags": listed}], "b": listed}
    assert dump(data2) == plain_dump(data2)


def test_a_value_that_looks_like_a_placeholder_changes_nothing() -> None:
    data = {"history": [{"event": "a"}], "note": "- kaalwatch-record-0000000000000000-0",
            "list": ["kaalwatch-record-", {"event": "b"}]}
    assert_same_twice(data)


def test_records_past_the_deepest_column_are_left_in_the_whole_dump() -> None:
    inner: Any = [{"event": "deep", "detail": "word " * 40}]
    for level in range(30):
        inner = {f"k{level}": inner}
    data = {"history": [{"event": "shallow"}], "deep": inner}
    assert dump(data) == plain_dump(data)
    assert not yaml_blocks._kept  # the deep record fell back to one plain dump of everything


def test_what_is_kept_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_blocks, "KEPT", 10)
    data = {"history": [{"event": f"e{n}"} for n in range(25)]}
    assert_same_twice(data)
    assert len(yaml_blocks._kept) == 10


def test_a_deep_copy_is_dumped_from_the_kept_texts() -> None:
    data = {"history": [{"event": f"e{n}", "detail": "x " * n} for n in range(40)]}
    dump(data)
    before = dict(yaml_blocks._kept)
    assert dump(copy.deepcopy(data)) == plain_dump(data)
    assert dict(yaml_blocks._kept) == before  # nothing new: found by content, not by identity
