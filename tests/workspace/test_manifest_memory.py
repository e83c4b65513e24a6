"""ManifestMemory: an unchanged order.yaml is parsed once per process; any change to its text, by any writer,
is read again, and no caller's change leaks into what the next caller gets."""

from __future__ import annotations

import os
from collections.abc import Callable

from kaalwatch import lifecycle
from kaalwatch.manifest import dump_manifest, parse_manifest
from kaalwatch.model import Order, Version, utcnow
from kaalwatch.store import MANIFEST, Workspace


def test_an_unchanged_manifest_is_parsed_once_and_saves_parse_nothing(ws: Workspace,
                                                                        make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    memory = ws.manifests
    first = ws.load(order.receipt_id)
    parses = memory.parses
    assert ws.load(order.receipt_id) == first and memory.parses == parses  # the same text: no parse
    deltas = []
    for number in (1, 2, 3):  # what a save does: read to find the job, then edit under the lock
        parses = memory.parses
        ws.load(order.receipt_id)
        with ws.edit(order.receipt_id) as o:
            lifecycle.add_version(o, o.jobs[0].job_id, Version(
                number=number, source_name="a.png", sha256=str(number) * 64, size=1, saved_at=utcnow(),
                copy=f"v/{number}.png"))
        deltas.append(memory.parses - parses)
    # Each save finds the text it parsed or wrote last: nothing is parsed.
    assert deltas == [0, 0, 0]
    # What a reader gets after this process wrote is what the file says (whole seconds, as dumped).
    text = (folder / MANIFEST).read_text(encoding="utf-8")
    assert ws.load(order.receipt_id) == parse_manifest(text, "x") and dump_manifest(ws.load(order.receipt_id)) == text


def test_another_writers_change_is_read_even_with_the_same_size_and_times(ws: Workspace,
                                                                          make_order: Callable[..., Order]) -> None:
    order = make_order(buyer="Anna Aa")
    folder = ws.add_order(order)
    path = folder / MANIFEST
    assert ws.load(order.receipt_id).buyer_name == "Anna Aa"
    before = path.stat()
    # Another process (or a person) rewrites it in place: same size, and its times put back.
    text = path.read_text(encoding="utf-8").replace("Anna Aa", "Bert Bb")
    with path.open("r+", encoding="utf-8") as handle:
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    parses = ws.manifests.parses
    assert ws.load(order.receipt_id).buyer_name == "Bert Bb"
    assert ws.load(order.receipt_id).buyer_name == "Bert Bb" and ws.manifests.parses == parses + 1


def test_a_callers_change_does_not_leak_into_the_next_read(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order(buyer="Cleo")
    ws.add_order(order)
    mine = ws.load(order.receipt_id)
    mine.buyer_name = "changed in memory only"
    mine.jobs[0].title = "changed too"
    with ws.edit(order.receipt_id) as o:
        assert o.buyer_name == "Cleo" and o.jobs[0].title == order.jobs[0].title
        o.notes.clear()  # a no-op change: nothing to write
    again = ws.load(order.receipt_id)
    assert again.buyer_name == "Cleo" and again.jobs[0].title == order.jobs[0].title
