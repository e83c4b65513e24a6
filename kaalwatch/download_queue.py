"""The download queue: buyer uploads and style samples are fetched here, a few at a time, outside the sync pass.

A sync pass records a new order's references as ``pending`` and :func:`enqueue`\\ s the order; it never
waits for a buyer's server, so a new order is foldered within one sync interval whatever those servers do.
:meth:`DownloadQueue.run` (the daemon's ``downloads`` job, and ``kaalwatch sync`` after its pass) takes the
orders that are due, ``sync.download_workers`` at a time, fetches each one's unfinished references through
:mod:`kaalwatch.download` (absolute deadline per file, a byte budget per order) and records the outcome
with :func:`kaalwatch.lifecycle.record_downloads`. An order with failures is tried again later with
exponential backoff, and left alone after :data:`MAX_ATTEMPTS` (its failures stay shown on the order).

The queue is ``state/downloads.json``, changed only under ``locks/downloads.lock``. Taking an order
leases it (``next_at`` moves past the worst case), so the daemon and a hand-run sync never fetch the same
order at once, and an order taken by a process that died is taken again when the lease ends.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from kaalwatch import lifecycle
from kaalwatch.atomic import atomic_copy
from kaalwatch.download import Downloaded, DownloadPolicy, Resolver, fetch, reference_file_name
from kaalwatch.errors import DownloadError, KaalwatchError
from kaalwatch.model import Reference
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace

log = logging.getLogger(__name__)

STATE = "downloads"
MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 60.0
MAX_RETRY_SECONDS = 6 * 3600.0

Progress = Callable[[int, int], None]


@dataclass
class QueueReport:
    orders: int = 0
    fetched: int = 0
    failed: int = 0
    waiting: int = 0  # orders still queued afterwards (due later)

    def summary(self) -> str:
        return (f"downloads: {self.fetched} fetched, {self.failed} failed in {self.orders} orders; "
                f"{self.waiting} orders waiting")


def _lock(ws: Workspace) -> FileLock:
    ws.locks_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(ws.locks_dir / "downloads.lock"), timeout=60)


def _entries(ws: Workspace) -> dict[str, dict[str, Any]]:
    orders = ws.read_state(STATE).get("orders")
    return {k: v for k, v in orders.items() if isinstance(v, dict)} if isinstance(orders, dict) else {}


def enqueue(ws: Workspace, receipt_ids: Iterable[int], *, now: float | None = None) -> None:
    """Queue orders whose references are unfinished; due at once (an order already queued keeps its place)."""
    ids = [str(int(rid)) for rid in receipt_ids]
    if not ids:
        return
    at = time.time() if now is None else now
    with _lock(ws):
        entries = _entries(ws)
        for key in ids:
            entries.setdefault(key, {"attempts": 0, "next_at": at})
        ws.write_state(STATE, {"orders": entries})


def waiting(ws: Workspace) -> int:
    """Orders in the queue (for ``status`` and the health file)."""
    return len(_entries(ws))


def retry_after(attempts: int) -> float:
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempts - 1))


class DownloadQueue:
    """Works through the queue; ``resolve`` and ``clock`` are the edges tests replace."""

    def __init__(self, ws: Workspace, settings: Settings, *, resolve: Resolver = socket.getaddrinfo,
                 clock: Callable[[], float] = time.time) -> None:
        self.ws = ws
        self.settings = settings
        self.policy = DownloadPolicy.from_settings(settings)
        self.resolve = resolve
        self.clock = clock
        self.order_budget = int(settings.sync.download_order_max_mb * 1024 * 1024)
        # A lease outlasts the slowest possible order: every file taking its whole deadline, one after another.
        self.lease = settings.sync.download_max_files * settings.sync.download_timeout_seconds + 60
        self._samples: dict[str, Downloaded] = {}  # listing images: fetched once per run, copied to each order
        self._samples_lock = threading.Lock()

    def take_due(self) -> list[int]:
        """The orders due now, leased to this caller."""
        now = self.clock()
        with _lock(self.ws):
            entries = _entries(self.ws)
            due = sorted((int(k) for k, v in entries.items() if float(v.get("next_at") or 0) <= now))
            for rid in due:
                entries[str(rid)]["next_at"] = now + self.lease
            if due:
                self.ws.write_state(STATE, {"orders": entries})
        return due

    def run(self, *, stop: threading.Event | None = None, progress: Progress | None = None) -> QueueReport:
        """Fetch every due order, ``download_workers`` files at once; returns when they are done."""
        report = QueueReport()
        due = self.take_due()
        counting = threading.Lock()

        def one(rid: int) -> None:
            if stop is not None and stop.is_set():
                self._release(rid)  # due again at once, for the next run
                return
            fetched, failed = self._order(rid)
            with counting:
                report.orders += 1
                report.fetched += fetched
                report.failed += failed
                if progress is not None:
                    progress(report.orders, len(due))

        with ThreadPoolExecutor(self.settings.sync.download_workers, thread_name_prefix="download") as pool:
            list(pool.map(one, due))
        report.waiting = waiting(self.ws)
        if due:
            log.info("%s", report.summary())
        return report

    def _release(self, rid: int) -> None:
        with _lock(self.ws):
            entries = _entries(self.ws)
            if str(rid) in entries:
                entries[str(rid)]["next_at"] = self.clock()
                self.ws.write_state(STATE, {"orders": entries})

    def _settle(self, rid: int, failures_left: int) -> None:
        with _lock(self.ws):
            entries = _entries(self.ws)
            entry = entries.pop(str(rid), {"attempts": 0})
            attempts = int(entry.get("attempts") or 0) + 1
            if failures_left and attempts < MAX_ATTEMPTS:
                entries[str(rid)] = {"attempts": attempts, "next_at": self.clock() + retry_after(attempts)}
            self.ws.write_state(STATE, {"orders": entries})

    # ----------------------------------------------------------------------------------- one order

    def _order(self, rid: int) -> tuple[int, int]:
        """Fetch one order's unfinished references and record the outcome in one edit; (fetched, failed)."""
        try:
            order = self.ws.load(rid)
            folder = self.ws.folder_of(rid)
        except KaalwatchError as exc:
            log.warning("downloads: order %s cannot be read (%s); dropped from the queue", rid, exc.__class__.__name__)
            self._settle(rid, 0)
            return 0, 0
        budget = self.order_budget - sum(r.size or 0 for r in order.references if r.status == "ok" and r.url)
        results: list[Reference] = []
        for ref in order.references:
            if ref.status == "ok" or not ref.url or ref.source not in ("buyer", "listing"):
                continue
            target = self.ws.job_dir(folder, order, ref.job_id) / REFERENCES if ref.job_id else folder / REFERENCES
            taken = {r.name for r in order.references if r is not ref}
            result = self._one(rid, ref, target, taken, budget)
            budget -= result.size or 0
            results.append(result)
        attempts = 1 + int(_entries(self.ws).get(str(rid), {}).get("attempts") or 0)
        retry = "retried later" if attempts < MAX_ATTEMPTS else (
            f"gave up after {attempts} attempts; drop the files into references/ by hand")
        left = 0
        if results:
            with self.ws.edit(rid) as current:
                left = lifecycle.record_downloads(current, results, actor="sync", retry=retry)
        self._settle(rid, left)
        return sum(r.status == "ok" for r in results), sum(r.status == "failed" for r in results)

    def _one(self, rid: int, ref: Reference, target: Path, taken: set[str], budget: int) -> Reference:
        def failed(error: str) -> Reference:
            # The reason may name the buyer's host or file: it is shown on the order, not logged.
            log.info("order %s: a reference download failed", rid)
            return replace(ref, sha256=None, size=None, thumb=None, status="failed", error=error)

        if budget <= 0:
            return failed(f"the order's download budget of {self.settings.sync.download_order_max_mb:g} MB "
                          "is used up")
        url = ref.url or ""
        try:
            with self._samples_lock:
                cached = self._samples.get(url) if ref.source == "listing" else None
            if cached is not None and cached.path.is_file():
                got = _copy_into(cached, target, ref.name, taken)
            else:
                got = fetch(url, target, ref.name, taken, policy=self.policy, resolve=self.resolve,
                            max_bytes=budget)
                if ref.source == "listing":
                    with self._samples_lock:
                        self._samples[url] = got
        except DownloadError as exc:
            return failed(str(exc))
        except OSError as exc:
            return failed(f"could not save the file ({exc.strerror or exc.__class__.__name__})")
        return Reference(name=got.path.name, source=ref.source, job_id=ref.job_id, url=ref.url, label=ref.label,
                         sha256=got.sha256, size=got.size, status="ok", thumb=self._thumbnail(rid, got))

    def _thumbnail(self, rid: int, got: Downloaded) -> str | None:
        out = self.ws.previews_dir / str(rid) / "refs" / f"{got.sha256[:16]}.jpg"
        try:
            if not out.is_file():
                from kaalwatch.imaging import render_reference_thumbnail

                render_reference_thumbnail(got.path, out, edge=400,
                                           max_pixels=int(self.settings.preview.max_megapixels * 1_000_000))
            return self.ws.relative_to_tool(out)
        except (KaalwatchError, OSError, ImportError) as exc:
            log.info("order %s: no thumbnail for a reference (%s)", rid, exc.__class__.__name__)
            return None


def _copy_into(source: Downloaded, target: Path, stem: str, taken: set[str]) -> Downloaded:
    """The same listing image for another order: copied, not downloaded again."""
    target.mkdir(parents=True, exist_ok=True)
    path = target / reference_file_name(stem, source.path.suffix, taken | set(os.listdir(target)))
    atomic_copy(source.path, path)
    return Downloaded(path=path, sha256=source.sha256, size=source.size, kind=source.kind)
