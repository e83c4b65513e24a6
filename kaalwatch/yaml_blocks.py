"""PyYAML's block-style dump of plain data, with the text of unchanged list items reused from earlier dumps.

Why: an order's manifest is rewritten whole on every change (a save, a page action, a sync), and most of
it is lists of small records that never change once written: the versions of each job, the history. With
PyYAML the dump costs in proportion to the whole (its representer and resolver are Python, ~3,000 nodes
for an order with 34 versions and 70 history events: ~8 ms, 2026-11-29), so each save into a long order
paid for every earlier version again. Here each "leaf record" (a mapping in a list that holds no list of
mappings itself) is dumped on its own once and its text kept; the dump of the whole is PyYAML's dump of
the rest, with each record's kept text put back in its place.

Why the text is the same as PyYAML's dump of the whole: a record in a block sequence is written as
``- key: value`` at the column of its dash, its other lines two columns further in, and every choice the
emitter makes inside it (quoting, where a long scalar folds) depends only on the record and on its column
against the line width. So a record dumped alone as a one-item list, with the width reduced by its column,
and then indented by its column, is the text the whole dump would have written. The tests compare both
on random documents; anything unexpected in the skeleton's text falls back to one plain dump.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from typing import Any

import yaml

#: The manifest's line width (PyYAML folds long scalars at it).
WIDTH = 100
#: Records deeper than this column are dumped with the rest (a narrower width than 4 x PyYAML's indent
#: would change how it folds; manifests are nowhere near).
MAX_COLUMN = 40
#: Record texts kept, least recently used dropped first: the versions and history of 20 busy orders (~0.9
#: KB each, so at most ~2 MB).
KEPT = 2048

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: Scalar types whose text PyYAML's safe dumper writes from the value alone (exact types: a subclass may
#: not be representable, and is left to PyYAML's dump of the whole, which reports it).
_PLAIN = frozenset({str, int, float, bool, type(None)})
_kept: OrderedDict[tuple[int, str], str] = OrderedDict()
_lock = threading.Lock()


def plain_dump(data: Any, width: int = WIDTH) -> str:
    """PyYAML's dump with the manifest's options (block style, key order kept, UTF-8 as it is)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=width)


def dump(data: Any) -> str:
    """Exactly ``plain_dump(data)``, reusing the text of records dumped before."""
    token = f"kaalwatch-record-{secrets.token_hex(8)}-"
    records: list[dict[str, Any]] = []
    try:
        skeleton = _swap(data, records, token, set())
    except _Shared:
        return plain_dump(data)  # PyYAML writes an object met twice as an anchor and aliases: its job
    if not records:
        return plain_dump(data)
    lines = _lines(plain_dump(skeleton))
    places: list[tuple[int, int]] = []  # (line, column) of each record's placeholder, in record order
    for number, line in enumerate(lines):
        body = line.lstrip(" ")
        if body.startswith("- " + token):
            column = len(line) - len(body)
            if body != f"- {token}{len(places)}\n" or column > MAX_COLUMN:
                return plain_dump(data)  # not the line a placeholder makes: trust nothing, dump it whole
            places.append((number, column))
    if len(places) != len(records):
        return plain_dump(data)
    texts = _record_texts([(column, record) for (_line, column), record in zip(places, records, strict=True)])
    for (number, _column), text in zip(places, texts, strict=True):
        lines[number] = text
    return "".join(lines)


def _record_texts(wanted: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """The lines PyYAML writes for each record as a list item whose dash is at its column: kept ones
    reused, the others dumped together, one dump per column."""
    keys = [(column, repr(record)) for column, record in wanted]
    with _lock:
        found = [_kept.get(key) for key in keys]
        for key, text in zip(keys, found, strict=True):
            if text is not None:
                _kept.move_to_end(key)
    missing: dict[int, list[int]] = {}
    for index, text in enumerate(found):
        if text is None:
            missing.setdefault(wanted[index][0], []).append(index)
    for column, indexes in missing.items():
        items = _split_items(plain_dump([wanted[i][1] for i in indexes], WIDTH - column))
        if len(items) != len(indexes):  # cannot happen for records (see _split_items); dump them one by one
            items = [plain_dump([wanted[i][1]], WIDTH - column) for i in indexes]
        pad = " " * column
        for i, text in zip(indexes, items, strict=True):
            # PyYAML writes an empty line inside a multi-line scalar with no indentation at all.
            found[i] = "".join(line if len(line) == 1 else pad + line for line in _lines(text))
    with _lock:
        for index in (i for indexes in missing.values() for i in indexes):
            _kept[keys[index]] = found[index]  # type: ignore[assignment]
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return [text for text in found if text is not None]


def _split_items(text: str) -> list[str]:
    """A top-level block sequence's text, one string per item: an item starts at a line beginning "- "
    (the lines inside a record are indented: its keys, nested lists and folded scalars alike)."""
    items: list[str] = []
    for line in _lines(text):
        if line.startswith("- ") or line in ("-\n", "- \n") or not items:
            items.append(line)
        else:
            items[-1] += line
    return items


#: What PyYAML writes as a line break (it indents the text after one, not an empty line between two).
_BREAKS = re.compile("([\n\x85\u2028\u2029])")


def _lines(text: str) -> list[str]:
    """``text`` cut after each of PyYAML's line breaks (a single-quoted scalar keeps U+2028 and its kin as
    breaks and indents the text after them, as it does after "\\n")."""
    parts = _BREAKS.split(text)  # text, break, text, break, ..., text
    lines = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    return [*lines, parts[-1]] if parts[-1] else lines


class _Shared(Exception):
    """A list or mapping appears twice in the data."""


def _is_record(value: Any) -> bool:
    """A mapping with string keys of plain values, or of lists and mappings of them, holding no list of
    mappings."""
    return type(value) is dict and _plain_tree(value)


def _plain_tree(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is dict:
        return all(type(k) is str and _plain_tree(v) for k, v in value.items())
    if kind is list:
        return all(type(v) is not dict and _plain_tree(v) for v in value)
    return False


def _visit(container: Any, ids: set[int]) -> None:
    """Note ``container`` and every container in it, raising ``_Shared`` for one noted before."""
    if id(container) in ids:
        raise _Shared
    ids.add(id(container))
    for item in container.values() if type(container) is dict else container:
        if type(item) is dict or type(item) is list:
            _visit(item, ids)


def _swap(value: Any, records: list[dict[str, Any]], token: str, ids: set[int]) -> Any:
    """``value`` with every record inside a list replaced by a placeholder naming its place in ``records``.

    Records are numbered in the order PyYAML writes them (mapping and list order)."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    if id(value) in ids:
        raise _Shared
    ids.add(id(value))
    if kind is dict:
        return {k: _swap(v, records, token, ids) for k, v in value.items()}
    items: list[Any] = []
    for item in value:
        if _is_record(item):
            _visit(item, ids)
            items.append(f"{token}{len(records)}")
            records.append(item)
        else:
            items.append(_swap(item, records, token, ids))
    return items
