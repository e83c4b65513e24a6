"""Manifests mutated at random never crash the loader: always an Order or a ManifestError naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaalwatch import lifecycle
from kaalwatch.errors import ManifestError
from kaalwatch.manifest import dump_manifest, order_from_dict, order_to_dict, parse_manifest
from kaalwatch.model import Order, Version, utcnow
from kaalwatch.store import MANIFEST, Workspace


@pytest.fixture
def manifest_text(make_order: Callable[..., Order]) -> str:
    order = make_order(jobs=2)
    lifecycle.add_version(order, order.jobs[0].job_id, Version(number=1, source_name="a.png", sha256="a" * 64,
                                                               size=1, saved_at=utcnow(), copy="v/a.png"))
    lifecycle.send_proof(order, order.jobs[0].job_id, 1)
    return dump_manifest(order)


mutations = st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "replace", "truncate", "dup_line"]), st.integers(0, 10_000),
              st.text(alphabet=st.sampled_from(list(":-[]{}&*!|>'\"%@`#\n\t ,?0123456789abcxyz\x00\ufeff")),
                      max_size=12)),
    min_size=1, max_size=6,
)


def mutate(text: str, steps: list[tuple[str, int, str]]) -> str:
    for kind, position, chunk in steps:
        at = position % (len(text) + 1)
        if kind == "delete":
            text = text[:at] + text[at + len(chunk) + 1:]
        elif kind == "insert":
            text = text[:at] + chunk + text[at:]
        elif kind == "replace":
            text = text[:at] + chunk + text[at + len(chunk):]
        elif kind == "truncate":
            text = text[:at]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                index = position % len(lines)
                lines.insert(index, lines[index])
            text = "".join(lines)
    return text


@given(steps=mutations)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_manifest_parses_or_fails_cleanly(manifest_text: str, steps: list[tuple[str, int, str]]) -> None:
    text = mutate(manifest_text, steps)
    try:
        order = parse_manifest(text, "orders/x/order.yaml")
    except ManifestError as exc:
        assert str(exc).startswith("orders/x/order.yaml")
        assert "\n" not in str(exc)
    else:
        assert isinstance(order, Order)
        written = dump_manifest(order)  # whatever parsed can be written back
        # ... and reads back as itself, and as the order its data builds without YAML: ManifestMemory relies on
        # both (a file this process wrote is its own dump, and is not parsed back).
        reread = parse_manifest(written, "orders/x/order.yaml")
        assert dump_manifest(reread) == written
        assert order_from_dict(order_to_dict(order)) == reread


def test_yaml_bombs_and_odd_documents_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9))
    for text in (bomb, "!!python/object/apply:os.system ['echo hi']\n", "---\n...\n---\n", "[" * 5000):
        with pytest.raises(ManifestError):
            parse_manifest(text, "order.yaml")


def test_refresh_index_survives_a_workspace_full_of_broken_manifests(ws: Workspace,
                                                                     make_order: Callable[..., Order]) -> None:
    good = make_order()
    ws.add_order(good)
    for n in range(5):
        folder = ws.add_order(make_order())
        (folder / MANIFEST).write_bytes(bytes([n, 0xFF, 0xFE]) + b"\x00garbage: [")
    report = ws.refresh_index()
    assert len(report.broken) == 5
    assert ws.load(good.receipt_id).receipt_id == good.receipt_id


buyer_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(name=buyer_text, message=buyer_text, answer=buyer_text, note=buyer_text)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_buyer_text_reads_back_as_written(make_order: Callable[..., Order], name: str, message: str,
                                              answer: str, note: str) -> None:
    """Whatever a buyer types (control characters, line breaks, bidi marks, YAML syntax) is written so that
    reading it back gives the same order, with or without the parse."""
    order = make_order(buyer=name)
    order.message_from_buyer = message
    order.jobs[0].answers[0].answer = answer
    if note.strip():
        lifecycle.add_note(order, note)
    written = dump_manifest(order)
    reread = parse_manifest(written, "order.yaml")
    assert order_from_dict(order_to_dict(order)) == reread
    assert dump_manifest(reread) == written
