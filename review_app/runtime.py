"""What every view shares: the settings, the workspace, the login throttle and a cache of parsed manifests."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app

from kaalwatch.errors import NotFoundError
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, Workspace
from review_app.sessions import LoginThrottle


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """A file's identity (mtime, size, inode): every write is an atomic replace, which changes it. None: no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class OrderCache:
    """Parsed manifests keyed by the file's identity (mtime, size, inode), so a page view costs one ``stat``
    when nothing changed. Every write is an atomic replace, which changes the inode: a stale hit cannot
    happen. Cached orders are shared between threads and must be treated as read-only; changes go through
    ``ws.edit``, which loads its own fresh copy under the order's lock."""

    def __init__(self, ws: Workspace, size: int = 256, known_ttl: float = 2.0) -> None:
        self.ws = ws
        self.size = size
        self.known_ttl = known_ttl
        self._entries: OrderedDict[int, tuple[tuple[int, int, int], Order]] = OrderedDict()
        self._known: frozenset[int] = frozenset()
        self._known_at = float("-inf")
        self._lock = threading.Lock()

    def _indexed(self, receipt_id: int) -> bool:
        # ``folder_of`` walks every order folder when it misses (to find moved ones); a URL naming an order
        # that does not exist must not cost that, so unknown ids are answered from the index alone.
        if receipt_id in self._known and time.monotonic() - self._known_at < self.known_ttl:
            return True
        known = frozenset(self.ws.receipt_ids())
        with self._lock:
            self._known, self._known_at = known, time.monotonic()
        return receipt_id in known

    def load(self, receipt_id: int) -> Order:
        if not self._indexed(receipt_id):
            raise NotFoundError(f"no order {receipt_id}")
        folder = self.ws.folder_of(receipt_id)
        stamp = file_stamp(folder / MANIFEST)
        if stamp is None:
            raise NotFoundError(f"order {receipt_id} has no manifest")
        with self._lock:
            hit = self._entries.get(receipt_id)
            if hit and hit[0] == stamp:
                self._entries.move_to_end(receipt_id)
                return hit[1]
        order = self.ws.read_folder(folder)
        with self._lock:
            self._entries[receipt_id] = (stamp, order)
            self._entries.move_to_end(receipt_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return order

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class Runtime:
    settings: Settings
    ws: Workspace
    orders: OrderCache
    throttle: LoginThrottle
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def runtime() -> Runtime:
    found = current_app.extensions["kaalwatch"]
    assert isinstance(found, Runtime), "create_app stores the Runtime"
    return found
