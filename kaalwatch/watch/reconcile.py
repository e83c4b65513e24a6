"""Compare order folders with their manifests, so saves made while nobody watched still become versions.

Events are hints; the folders are the truth. A rescan (at start-up, on a timer, on demand, or by
``kaalwatch rescan``) walks every order folder and hands on each artwork or reference file whose size or
mtime differs from what was processed last time (``seen.SeenStore``), then re-renders previews that are
missing or were made with other settings. An unchanged folder costs a few ``stat`` calls: its manifest is
not even parsed, so 10,000 quiet folders take seconds, and a rescan that finds nothing writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kaalwatch.errors import KaalwatchError, ManifestError
from kaalwatch.imaging import PreviewSpec, spec_key
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import DELIVER, MANIFEST, REFERENCES, Workspace
from kaalwatch.watch.ignore import IgnoreRules, is_artwork_name
from kaalwatch.watch.ingest import Ingestor, Outcome
from kaalwatch.watch.seen import SeenFolder, SeenStore
from kaalwatch.watch.stability import StabilityTracker

log = logging.getLogger("kaalwatch.watch")


@dataclass
class RescanReport:
    """What one rescan found and did."""

    folders: int = 0
    checked: int = 0  # folders that had changed and were looked at closely
    queued: int = 0  # files handed on (to the watcher's queue, or ingested at once)
    versions: int = 0
    references: int = 0
    previews: int = 0
    pending: int = 0  # files still being written when the rescan gave up waiting (the next one finds them)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> None:
        if outcome.action == "version":
            self.versions += 1
        elif outcome.action == "reference":
            self.references += 1
        elif outcome.action in ("error", "misplaced"):
            self.errors.append(f"order {outcome.receipt_id}: {outcome.action} {outcome.detail}".rstrip())

    def summary(self) -> str:
        return (f"{self.folders} folders scanned ({self.checked} changed): {self.versions} new versions, "
                f"{self.references} references, {self.previews} previews rendered, {self.pending} still being "
                f"written, {len(self.errors)} errors in {self.seconds:.1f} s")


def settings_key(settings: Settings) -> str:
    """Changes whenever any setting that shapes previews changes (then every folder is checked again)."""
    parts = repr((settings.preview, settings.watermark, settings.workflows, settings.default_workflow,
                  settings.shop_name, spec_key(PreviewSpec(), "")))
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()[:16]


def walk_candidates(folder: Path, rules: IgnoreRules) -> list[tuple[str, int, int]]:
    """(path relative to the order folder, size, mtime_ns) of every file a rescan cares about: artwork
    names anywhere but ``deliver/``, and anything directly in a ``references/`` folder."""
    out: list[tuple[str, int, int]] = []
    stack: list[tuple[str, str]] = [(str(folder), "")]
    while stack:
        real, rel = stack.pop()
        try:
            entries = list(os.scandir(real))
        except OSError:
            continue
        in_refs = rel.rsplit("/", 1)[-1] == REFERENCES
        for entry in entries:
            name = entry.name
            child = f"{rel}/{name}" if rel else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not rules.ignores_dir(name) and name != DELIVER and not in_refs:
                        stack.append((entry.path, child))
                    continue
                if not entry.is_file(follow_symlinks=False) or name == MANIFEST or rules.ignores(name):
                    continue
                if not (in_refs or is_artwork_name(name)):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_size > 0:
                out.append((child, st.st_size, st.st_mtime_ns))
    return out


Deliver = Callable[[Path, int], None]
Rerender = Callable[[int, str, int], None]


class Reconciler:
    """Finds what changed in order folders. Edge cases handled: broken manifests (reported, skipped),
    folders renamed or moved (the manifest is the identity; the seen rows are per receipt), files deleted
    since (never acted on), non-artwork files (never cause work), settings changed (every folder is
    re-checked once), previews deleted by hand (re-rendered)."""

    def __init__(self, ws: Workspace, settings: Settings, ingestor: Ingestor, seen: SeenStore) -> None:
        self.ws = ws
        self.settings = settings
        self.ingestor = ingestor
        self.seen = seen
        self.rules = ingestor.rules
        self.key = settings_key(settings)

    def scan(self, folders: Iterable[Path] | None, deliver: Deliver, rerender: Rerender, *, force: bool = False,
             progress: Callable[[int], None] | None = None) -> RescanReport:
        """Scan ``folders`` (None: every order folder, then refresh the index). ``deliver`` receives each
        changed file with its mtime; ``rerender`` each version whose preview is missing or stale."""
        started = time.monotonic()
        report = RescanReport()
        full = folders is None
        seen_folders = self.seen.all_folders() if full else {}
        seen_files = self.seen.all_files() if full else {}
        for folder in (self.ws.iter_order_folders() if folders is None else folders):
            report.folders += 1
            rel_folder = folder.relative_to(self.ws.orders_dir).as_posix()
            try:
                self._scan_folder(folder, rel_folder, seen_folders.get(rel_folder) if full else
                                  self.seen.folder(rel_folder), seen_files if full else None, deliver,
                                  rerender, force, report)
            except (KaalwatchError, OSError) as exc:
                report.errors.append(f"{rel_folder}: {exc}")
            if progress is not None:
                progress(1)
        if full:
            self.ws.refresh_index()
        report.seconds = time.monotonic() - started
        return report

    def _scan_folder(self, folder: Path, rel_folder: str, known: SeenFolder | None,
                     all_files: dict[int, dict[str, tuple[int, int]]] | None, deliver: Deliver, rerender: Rerender,
                     force: bool, report: RescanReport) -> None:
        try:
            mst = (folder / MANIFEST).stat()
        except OSError:
            return
        files = walk_candidates(folder, self.rules)
        if known is not None and not force and (known.manifest_mtime_ns, known.manifest_size) == (
                mst.st_mtime_ns, mst.st_size) and known.settings_key == self.key:
            seen = all_files.get(known.receipt_id, {}) if all_files is not None else self.seen.files_of(
                known.receipt_id)
            if all(seen.get(rel) == (size, mtime) for rel, size, mtime in files) and all(
                    (self.ws.tool_dir / p).is_file() for p in known.previews):
                return  # unchanged since it was last verified: no parsing, no reading
        report.checked += 1
        try:
            order = self.ws.read_folder(folder)
        except ManifestError as exc:
            report.errors.append(str(exc))
            return
        if "watcher" in order.errors:
            self.ingestor.misplaced_gone(folder, order)
        seen = self.seen.files_of(order.receipt_id)
        changed = [(rel, mtime) for rel, size, mtime in files if seen.get(rel) != (size, mtime)]
        for rel, mtime in changed:
            deliver(folder / rel, mtime)
        report.queued += len(changed)
        stale = self.ingestor.stale_previews(order, rebuild=False)
        for job_id, number in stale:
            rerender(order.receipt_id, job_id, number)
        report.previews += len(stale)
        if not changed and not stale:
            self.seen.put_folder(rel_folder, SeenFolder(order.receipt_id, mst.st_mtime_ns, mst.st_size, self.key,
                                                        previews_of(order)))


def previews_of(order: Order) -> tuple[str, ...]:
    return tuple(p for job in order.jobs for v in job.versions for p in (v.preview, v.thumb) if p)


def ingest_when_stable(ingestor: Ingestor, found: list[tuple[Path, int]], quiet: float, report: RescanReport,
                       *, max_wait: float | None = None, in_flight: Callable[[Path], bool] | None = None) -> None:
    """Ingest files found by a scan in the caller's thread, each once it has been quiet for ``quiet``
    seconds (a file whose mtime is older than that is ingested at once). Gives up waiting after
    ``max_wait`` (default 10 quiet periods + 30 s); what is left is counted as pending."""
    tracker = StabilityTracker(quiet)
    now = time.monotonic()
    wall = time.time()
    for path, mtime_ns in found:
        tracker.touch(path, now, quiet_since=now - max(0.0, wall - mtime_ns / 1e9))
    deadline = now + (max_wait if max_wait is not None else 10 * quiet + 30)
    while len(tracker) and time.monotonic() < deadline:
        for path in tracker.due(time.monotonic()):
            if in_flight is not None and in_flight(path):
                continue  # the watcher is ingesting it right now
            try:
                outcome = ingestor.ingest(path)
            except (KaalwatchError, OSError) as exc:
                report.errors.append(f"{path.name}: {exc}")
                continue
            if outcome.action == "changed":
                tracker.touch(path, time.monotonic())
            report.count(outcome)
        upcoming = tracker.next_deadline()
        if upcoming is not None:
            time.sleep(max(0.01, min(0.5, upcoming - time.monotonic())))
    report.pending += len(tracker)
