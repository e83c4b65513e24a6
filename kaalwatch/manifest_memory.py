"""The manifests this process read or wrote last, so an unchanged ``order.yaml`` is not parsed again.

Every save of the artist reads its order's manifest twice (to find the job, then under the lock to record the
version) and ``Workspace.edit`` compares the order's YAML before and after the change. Parsing and dumping
both grow with the order's history: 12.4 and 13.7 ms for a job with 60 versions (measured 2026-11-29 on a
manifest the preview benchmark's saves wrote; PyYAML's C parser, whose Python half builds the objects).
The memory is keyed by the file's whole **text**, which is read anyway and costs microseconds to compare: a
file that changed in any byte, by whatever writer, is parsed again; nothing is trusted to timestamps or
inode numbers.

An entry also keeps the order's canonical dump once known (a file this process wrote *is* its dump), so
``edit`` needs no "before" dump to tell whether anything changed, and a file this process wrote is not
parsed back: the order a parse would give is built from the data the text was dumped from (YAML's scanner
and object construction are most of a parse). A save then costs one dump instead of two parses and two
dumps. Each caller gets its own copy, unpickled from bytes the memory keeps (0.6 ms for a pickle round trip
at 60 versions, against 1.9 ms for ``copy.deepcopy``), so no change leaks into the memory. The bytes are
made here from orders this process built and never leave it.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kaalwatch.errors import ManifestError
from kaalwatch.manifest import dump_manifest, order_from_dict, parse_manifest
from kaalwatch.model import Order

#: Orders remembered per process: the few an artist is working on, and the page's latest looks.
KEPT = 32


@dataclass(frozen=True)
class _Entry:
    text: str  # the file's text when read or written
    frozen: bytes | None  # the order parsed from it, pickled (None until it is parsed): each reader gets its own
    dump: str | None  # dump_manifest(order) once known (it is ``text`` for a file this process wrote)
    data: dict[str, Any] | None = None  # what this process dumped into ``text``, until a reader needs the order


class ManifestMemory:
    """Parsed manifests by path and text; thread-safe (the watcher and the page share a workspace)."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0  # how many texts were really parsed (for tests and the watch benchmark)

    def _get(self, key: str, text: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.text != text:
                return None
            self._entries.move_to_end(key)
            return entry

    def _put(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.kept:
                self._entries.popitem(last=False)

    def parse(self, key: str, text: str, source: str) -> Order:
        """The order ``text`` holds (a private copy); ManifestError as ``parse_manifest`` raises it."""
        entry = self._get(key, text)
        if entry is not None and entry.frozen is not None:
            thawed: Order = pickle.loads(entry.frozen)  # noqa: S301 - bytes this process pickled, never read from outside
            return thawed
        order = None
        if entry is not None and entry.data is not None:
            # Written by this process: the order a parse would give, from the data the text was dumped from.
            with contextlib.suppress(ManifestError):  # not valid after all: the parse below says why
                order = order_from_dict(entry.data, source)
        if order is None:
            order = parse_manifest(text, source)
            self.parses += 1
        frozen = pickle.dumps(order, protocol=pickle.HIGHEST_PROTOCOL)
        self._put(key, _Entry(text, frozen, entry.dump if entry is not None else None))
        return order

    def dump_of(self, key: str, text: str, order: Order) -> str:
        """``dump_manifest(order)`` for an ``order`` just parsed from ``text`` and not changed yet."""
        entry = self._get(key, text)
        if entry is not None and entry.dump is not None:
            return entry.dump
        dumped = dump_manifest(order)
        if entry is not None:
            self._put(key, _Entry(entry.text, entry.frozen, dumped, entry.data))
        return dumped

    def wrote(self, key: str, text: str, data: dict[str, Any]) -> None:
        """``text``, dumped from ``data`` (``manifest.order_to_dict``), is now the file's content. The order a
        parse of it would give is built from ``data`` when first read (``manifest.order_from_dict``; not the
        order as it was in memory, which holds more than its text, such as the microseconds the dump leaves
        out); nothing is done now, so writing many orders (a first import) costs nothing here. ``data`` must
        not change afterwards: it is fresh from ``order_to_dict`` and nobody else holds it."""
        self._put(key, _Entry(text, None, text, data))

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
