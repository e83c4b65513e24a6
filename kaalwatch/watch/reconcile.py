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
from pathlib import Path, PurePosixPath

from kaalwatch.errors import KaalwatchError, ManifestError
from kaalwatch.imaging import PreviewSpec, spec_key
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import DELIVER, MANIFEST, REFERENCES, Workspace, listed_order_folders
from kaalwatch.watch import verdicts
from kaalwatch.watch.ignore import IgnoreRules, is_artwork_name
from kaalwatch.watch.ingest import Ingestor, Outcome
from kaalwatch.watch.seen import SeenFolder, SeenStore
from kaalwatch.watch.stability import StabilityTracker, quiet_for

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
    broken: int = 0  # versions whose saved copy turned out cut off (marked on the page)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> None:
        if outcome.action == "version":
            self.versions += 1
        elif outcome.action == "reference":
            self.references += 1
        elif outcome.action == "unfinished":
            self.pending += 1
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


def walk_candidates(folder: Path | str, rules: IgnoreRules,
                    listing: list[os.DirEntry[str]] | None = None) -> list[tuple[str, int, int]]:
    """(path relative to the order folder, size, mtime_ns) of every file a rescan cares about: artwork
    names anywhere but ``deliver/``, and anything directly in a ``references/`` folder. ``listing`` is the
    folder's own entries when the caller has just listed it (a full rescan lists each folder once)."""
    out: list[tuple[str, int, int]] = []
    stack: list[tuple[str, str]] = [(str(folder), "")]
    while stack:
        real, rel = stack.pop()
        try:
            entries = listing if listing is not None and not rel else list(os.scandir(real))
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


def walk_order_folders(folder: Path) -> list[Path]:
    """The order folders at or below ``folder`` (a folder event's hint: a folder of orders moved in whole)."""
    return [Path(found) for found, _entries in listed_order_folders(folder)]


Deliver = Callable[[Path, int], None]
Rerender = Callable[[int, str, int], object]


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
        self.tool_dir = str(ws.tool_dir)

    def scan(self, folders: Iterable[Path] | None, deliver: Deliver, rerender: Rerender, *, force: bool = False,
             progress: Callable[[int], None] | None = None) -> RescanReport:
        """Scan ``folders`` (None: every order folder, then refresh the index). ``deliver`` receives each
        changed file with its mtime; ``rerender`` each version whose preview is missing or stale."""
        started = time.monotonic()
        report = RescanReport()
        full = folders is None
        seen_folders = self.seen.all_folders() if full else {}
        seen_files = self.seen.all_files() if full else {}
        visited: set[str] = set()
        listed = listed_order_folders(self.ws.orders_dir) if folders is None else ((str(f), None) for f in folders)
        prefix = len(str(self.ws.orders_dir)) + 1
        for name, listing in listed:
            report.folders += 1
            folder = Path(name)
            rel_folder = name[prefix:].replace(os.sep, "/")
            visited.add(rel_folder)
            try:
                self._scan_folder(folder, rel_folder, seen_folders.get(rel_folder) if full else
                                  self.seen.folder(rel_folder), seen_files if full else None, deliver,
                                  rerender, force, report, listing)
            except (KaalwatchError, OSError) as exc:
                report.errors.append(f"{rel_folder}: {exc}")
            if progress is not None:
                progress(1)
        if full:
            gone = set(seen_folders) - visited
            for rel_folder in gone:
                self.seen.forget_folder(rel_folder)
            # The index follows every manifest kaalwatch writes; only a manifest changed by hand, or a folder
            # that appeared, moved or went (all of them "checked" or gone here), needs another look.
            if report.checked or gone:
                self.ws.refresh_index()
        report.seconds = time.monotonic() - started
        return report

    def _scan_folder(self, folder: Path, rel_folder: str, known: SeenFolder | None,
                     all_files: dict[int, dict[str, tuple[int, int]]] | None, deliver: Deliver, rerender: Rerender,
                     force: bool, report: RescanReport, listing: list[os.DirEntry[str]] | None = None) -> None:
        try:
            mst = os.stat(os.path.join(folder, MANIFEST))
        except OSError:
            return
        files = walk_candidates(folder, self.rules, listing)
        if known is not None and not force and (known.manifest_mtime_ns, known.manifest_size) == (
                mst.st_mtime_ns, mst.st_size) and known.settings_key == self.key:
            seen = all_files.get(known.receipt_id, {}) if all_files is not None else self.seen.files_of(
                known.receipt_id)
            if all(seen.get(rel) == (size, mtime) for rel, size, mtime in files) and \
                    preview_dirs(self.tool_dir, known.previews) == known.previews:
                return  # unchanged since it was last verified: no parsing, no reading
        report.checked += 1
        try:
            order = self.ws.read_folder(folder)
        except ManifestError as exc:
            report.errors.append(str(exc))
            return
        if "watcher" in order.errors:
            verdicts.clear_misplaced(self.ws, self.ingestor.rules, folder, order)
        # Taken before the previews are checked: a preview deleted after this changes its folder's mtime.
        dirs = preview_dirs(self.tool_dir, previews_of(order))
        seen = self.seen.files_of(order.receipt_id)
        changed = [(rel, mtime) for rel, size, mtime in files if seen.get(rel) != (size, mtime)]
        for rel, mtime in changed:
            deliver(folder / rel, mtime)
        report.queued += len(changed)
        report.broken += self.ingestor.mark_broken(order)
        stale = self.ingestor.stale_previews(order, rebuild=False)
        for job_id, number in stale:
            rerender(order.receipt_id, job_id, number)
        report.previews += len(stale)
        # Recorded even when files were handed on: the next scan compares each file with the seen-store again,
        # so a folder whose files were judged meanwhile is unchanged then (no parse), and one that was not is
        # not. Stale previews keep it unrecorded until they are rendered (which also rewrites the manifest).
        if not stale:
            self.seen.put_folder(rel_folder, SeenFolder(order.receipt_id, mst.st_mtime_ns, mst.st_size, self.key,
                                                        dirs))


def previews_of(order: Order) -> tuple[tuple[str, int], ...]:
    """The folders holding an order's previews (relative to the tool area), to be stamped by ``preview_dirs``."""
    found = {str(PurePosixPath(p).parent) for job in order.jobs for v in job.versions for p in (v.preview, v.thumb)
             if p}
    return tuple((d, 0) for d in sorted(found))


def preview_dirs(tool_dir: str, dirs: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """``dirs`` stamped with each folder's mtime now: deleting (or adding) a preview changes it, so an
    unchanged folder costs one ``stat`` per job instead of two per version."""
    out = []
    for rel, _mtime in dirs:
        try:
            out.append((rel, os.stat(os.path.join(tool_dir, rel)).st_mtime_ns))
        except OSError:
            out.append((rel, -1))
    return tuple(out)


def ingest_when_stable(ingestor: Ingestor, found: list[tuple[Path, int]], settings: Settings, report: RescanReport,
                       *, max_wait: float | None = None, in_flight: Callable[[Path], bool] | None = None) -> None:
    """Ingest files found by a scan in the caller's thread, each once it has been quiet for its quiet
    period (a file unchanged for longer is ingested at once). Gives up waiting after ``max_wait``
    (default 10 quiet periods + 30 s); what is left is counted as pending."""
    quiet = settings.watcher.quiet_seconds
    tracker = StabilityTracker(quiet, quiet_for=quiet_for(settings))
    now = time.monotonic()
    for path, _mtime_ns in found:
        tracker.touch(path, now, scanned=True)
    deadline = now + (max_wait if max_wait is not None else 10 * quiet + 30)
    while len(tracker) and time.monotonic() < deadline:
        for path, signature in tracker.due_signed(time.monotonic()):
            if in_flight is not None and in_flight(path):
                # The watcher is ingesting it right now: looked at again once its quiet period has passed
                # once more (that ingest may fail: a full disk), rather than dropped from this scan.
                tracker.touch(path, time.monotonic())
                continue
            try:
                outcome = ingestor.ingest(path, signature)
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
