"""Turn one stable file into a version: the watcher's pipeline, stage by stage.

One save goes through five stages, each a method of ``Ingestor`` called in order by ``Ingestor.ingest``:

1. **stable** — the stability tracker saw the path quiet (``stability``; the caller's job);
2. **locate** — which order and job the path belongs to and what it is there (``locate``): anything but
   artwork ends here (ignored, misplaced, a reference); then ``confirm`` that it is still the file the
   tracker saw quiet: the same stat, complete by its format's rule (``imaging.complete``), not bytes
   already judged, not a layered source whose export is beside it;
3. **pair** — what a layered source or an export beside it pairs with (``pairing``);
4. **stage and render**, side by side — the file streamed once into a staging copy in the tool area while
   it is hashed, and its watermarked preview rendered in a worker meanwhile; then the file is checked
   unchanged from before either read it to after both did, so both saw the bytes that were hashed;
5. **commit** — under the order's lock: the copy renamed to its immutable name, the version recorded
   through ``lifecycle``, the preview moved into place.

A stage that decides the file is not a new version ends the pipeline with an ``Outcome`` (``verdicts``
records it). The rules:

Identity of a version is the SHA-256 of its bytes. Per job:

- bytes already recorded as a version (a touch, a sync client re-writing the same file, an old file saved
  under a new name) are *not* a new version, and nothing is written;
- new bytes become version N+1: the file is streamed once into a staging copy in the tool area while it
  is hashed (so the copy is exactly the bytes that were hashed, even if the artist saves again meanwhile)
  and rendered into a watermarked preview meanwhile, and only then, under the order's lock, renamed to its
  immutable name and recorded with ``lifecycle.add_version``;
- bytes that do not decode (truncated, corrupt, a decompression bomb) are not complete: no version, the
  job's error names the file, and the next event or rescan tries again. A later good save clears it;
- a file whose name follows a sync client's conflict pattern is a conflict *whatever its bytes*: new bytes
  become a version flagged ``conflict``, known bytes (the usual case: the client renamed the local save)
  are not versioned again, and either way the job lists the conflict (``lifecycle.note_conflict``) until
  the owner says which copy is current; until then nothing is approved or delivered;
- known bytes (or a paired layered source) at a new path are the same work moved or renamed: no version,
  approval and ``deliver/`` untouched, the move recorded in history;
- a file that its format's completeness rule (``imaging.complete``) says is unfinished, or that changed
  between its quiet period and the end of the copy, is "still being written": no version.

**Layered source + export** (``pairing``): one save whichever of the two arrives first. Export first: it
is the version, and the layered file arriving later is recorded on it. Layered first: it becomes a
version, and the export arriving within the window *completes* that version (same number, the file and
preview now from the export) instead of making a second one — unless a proof was sent or an approval
given meanwhile. A source saved without an export is a version of its own, so no save is ever lost.

Crash safety: the copy's final name is derived from its number and hash, the manifest is written last,
and ``add_version`` refuses a hash already recorded; a kill at any point leaves, at worst, a staging file
or an unreferenced copy that the next rescan overwrites with the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_module
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from kaalwatch import lifecycle, private
from kaalwatch.atomic import WRITEBACK_BYTES, atomic_open, is_temp_name, start_writeback
from kaalwatch.errors import ImageError, KaalwatchError
from kaalwatch.imaging import RenderResult, classify
from kaalwatch.imaging.complete import incomplete
from kaalwatch.imaging.decode import check_identity
from kaalwatch.model import Job, Order, Version
from kaalwatch.naming import safe_component
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import verdicts
from kaalwatch.watch.ignore import IgnoreRules, conflict_original
from kaalwatch.watch.locate import Location, Role, find_order_folder, locate_in
from kaalwatch.watch.pairing import (
    completes,
    export_sibling,
    file_sha256,
    is_layered,
    layered_sibling,
    still_completes,
    version_of,
)
from kaalwatch.watch.previews import ACTOR, PreviewMixin, Renderer, preview_spec, text_template, watermark_for
from kaalwatch.watch.seen import SeenStore
from kaalwatch.watch.stability import Signature
from kaalwatch.watch.verdicts import UNREADABLE, Outcome

log = logging.getLogger("kaalwatch.watch")

_CHUNK = 1 << 20
STAGING_PREFIX = ".staging-"


def stage_copy(src: Path, folder: Path) -> tuple[Path, str, int, os.stat_result]:
    """Stream ``src`` into a staging file in ``folder`` while hashing it; returns (copy, sha256, size, stat
    before reading). The artist's file is only read."""
    private.make_dir(folder)
    suffix = src.suffix.lower() if src.suffix.isascii() and len(src.suffix) <= 12 else ".bin"
    staged = folder / f"{STAGING_PREFIX}{uuid.uuid4().hex}{suffix}"
    digest = hashlib.sha256()
    size = 0
    # An immutable copy, private by default. Its staging name is not what is kept (commit renames it), so
    # its own rename needs no directory fsync.
    with open(src, "rb") as fh, atomic_open(staged, private.read_only_mode(), sync_dir=False) as out:
        before = os.fstat(fh.fileno())
        handed = 0  # bytes whose writeback has started
        buffer = bytearray(_CHUNK)  # one buffer read into: no 1 MB allocation per chunk (~5% of the copy's CPU)
        view = memoryview(buffer)
        while n := fh.readinto(buffer):
            chunk = view[:n]
            digest.update(chunk)
            out.write(chunk)
            size += n
            if size - handed >= WRITEBACK_BYTES:
                start_writeback(out, handed, size - handed)
                handed = size
    return staged, digest.hexdigest(), size, before


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What changes when a file is written to or replaced, even by a writer that keeps its size and mtime."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _unchanged(path: Path, confirmed: os.stat_result, before: os.stat_result, size: int) -> bool:
    """The file is the one confirmed (same inode, size, mtime and ctime) from before the copy and the render
    read it to after both finished, and all of it was copied."""
    try:
        after = path.stat()
    except OSError:
        return False
    return _identity(confirmed) == _identity(before) == _identity(after) and size == confirmed.st_size


def _likely_known(job: Job, st: os.stat_result) -> bool:
    """Size and mtime (to the second a manifest keeps) of a recorded version: a rename or move of it, most
    likely; the hash decides."""
    return any(v.size == st.st_size and abs(v.saved_at.timestamp() - st.st_mtime) < 1 for v in job.versions)


def _next_number(job: Job) -> int:
    return (job.versions[-1].number + 1) if job.versions else 1


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


class Finished(Exception):
    """Raised by a stage that decided what the file is: the pipeline ends with ``outcome``."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.action)
        self.outcome = outcome


@dataclass
class Save:
    """One artwork save on its way through the pipeline (beets' import "task"): each stage fills in its part."""

    path: Path
    loc: Location
    order: Order  # as read when the path was located (``commit`` re-reads it under the lock)
    job_id: str
    quiet: Signature | None  # (size, mtime_ns) the tracker saw quiet; None from a caller without one
    st: os.stat_result | None = None
    conflict_of: str | None = None  # the original's name when this is a sync client's conflict copy
    staged: Path | None = None
    sha: str = ""
    size: int = 0
    pair: tuple[str, str] | None = None  # (its layered source's path in the job, that source's hash)
    completes: int | None = None  # the layered source's lone version this export completes
    predicted: int = 0  # the version number the watermark shows
    key: str = ""  # the preview's cache key (``spec_key``)
    tmp_preview: Path | None = None
    tmp_thumb: Path | None = None
    result: RenderResult | None = None
    render_error: Exception | None = None  # what the render raised, judged once the copy is done

    @property
    def job(self) -> Job:
        return self.order.job(self.job_id)

    @property
    def stat(self) -> os.stat_result:
        assert self.st is not None, "confirm() runs first"
        return self.st


class Ingestor(PreviewMixin):
    """Turns stable paths into versions, references and previews. Safe to call from several threads: the
    order lock serialises manifest changes and a second call with the same bytes finds them recorded.

    Edge cases handled: the path vanished or is no longer a regular file; the file changed while it was
    copied (``changed``: the caller arms it again); the order folder was renamed after the event (found
    again by the caller's rescan); identical bytes under another name; conflict copies; layered source +
    export pairing; undecodable files (retried, never given up); a preview worker that crashed.
    """

    def __init__(self, ws: Workspace, settings: Settings, renderer: Renderer, seen: SeenStore,
                 rules: IgnoreRules | None = None) -> None:
        self.ws = ws
        self.settings = settings
        self.renderer = renderer
        self.seen = seen
        self.rules = rules or IgnoreRules(settings.watcher.ignore_patterns)
        self.ingests = 0
        self._count_lock = threading.Lock()

    def ingest(self, path: Path, stable: Signature | None = None) -> Outcome:
        """The pipeline of one path the stability tracker (or a rescan) found quiet: locate, confirm it is
        still stable, stage, render, commit. A stage that decides what the file is ends it (``Finished``).
        ``stable`` is the (size, mtime_ns) the path kept while quiet: other bytes by now mean a writer
        started meanwhile."""
        with self._count_lock:
            self.ingests += 1  # the cost figure of issue 23: work must grow with what changed
        save: Save | None = None
        try:
            save = self.locate(path, stable)
            self.confirm(save)
            self.pair(save)
            self.stage_and_render(save)
            return self.commit(save)
        except Finished as done:
            return done.outcome
        finally:
            if save is not None:
                _remove(save.staged, save.tmp_preview, save.tmp_thumb)

    # --------------------------------------------------------------------------------------- the stages

    def locate(self, path: Path, stable: Signature | None) -> Save:
        """Which order and job ``path`` belongs to; anything but artwork is judged here and ends the pipeline."""
        folder = find_order_folder(path, self.ws.orders_dir)
        if folder is None:
            raise Finished(Outcome("ignored"))
        order = self.ws.read_folder(folder)
        loc = locate_in(folder, order, path, self.rules)
        if loc.role is Role.IGNORED:
            verdicts.remember(self.seen, loc, path)
            raise Finished(Outcome("ignored", loc.receipt_id))
        if loc.role is Role.MISPLACED:
            raise Finished(verdicts.misplaced(self.ws, self.seen, loc, path))
        if "watcher" in order.errors:
            verdicts.clear_misplaced(self.ws, self.rules, folder, order)
        if loc.role is Role.REFERENCE:
            raise Finished(verdicts.reference(self.ws, self.seen, self.settings, loc, order, path))
        assert loc.job_id is not None
        return Save(path, loc, order, loc.job_id, stable)

    def confirm(self, save: Save) -> None:
        """Still the file the tracker saw quiet, finished by its format's rule, and bytes not yet judged."""
        loc, path = save.loc, save.path
        outcome = Outcome("gone", loc.receipt_id, save.job_id)
        try:
            st = save.st = path.stat()
        except OSError:
            raise Finished(outcome) from None
        if not stat_module.S_ISREG(st.st_mode) or st.st_size == 0:
            raise Finished(outcome)
        save.conflict_of = conflict_original(path.name, lambda name: (path.parent / name).is_file())
        seen = self.seen.file(loc.receipt_id, loc.rel)
        if seen and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns) and version_of(save.job, seen.sha256):
            if save.conflict_of is None:
                raise Finished(Outcome("known", loc.receipt_id, save.job_id))
            raise Finished(verdicts.known(self.ws, self.seen, loc, st, seen.sha256, save.conflict_of))
        if save.quiet is not None and save.quiet != (st.st_size, st.st_mtime_ns):
            raise Finished(Outcome("changed", loc.receipt_id, save.job_id))
        if reason := incomplete(path):
            try:
                check_identity(path)
            except ImageError as exc:  # not cut off but something else (a ZIP posing as PNG, a polyglot)
                verdicts.remember(self.seen, loc, path, UNREADABLE, st)
                raise Finished(verdicts.unreadable(self.ws, loc, artist_facing(exc.message, path))) from None
            raise Finished(verdicts.unfinished(self.ws, self.seen, loc, st, reason))
        if is_layered(path.name):
            export = export_sibling(path, st)
            if export is not None:
                raise Finished(verdicts.paired_source(self.ws, self.seen, loc, path, st, export, save.conflict_of))

    def pair(self, save: Save) -> None:
        """What an export pairs with: its layered source beside it, and the lone version that source made."""
        if is_layered(save.path.name):
            return
        layered = layered_sibling(save.path, save.stat)
        if layered is not None:
            loc = save.loc
            layered_sha = self._sha_of(loc.receipt_id, layered)
            save.pair = (layered.relative_to(loc.order_folder / save.job.folder).as_posix(), layered_sha)
            save.completes = completes(save.job, layered_sha)

    def stage_and_render(self, save: Save) -> None:
        """The staging copy (hashed while copied) and the preview, side by side; then what they found.

        The render reads the artist's file while this thread copies it: the copy's read, hash and fsync
        are I/O and the render is CPU in a worker, so a save costs about the longer of the two, not their
        sum (for a layered TIFF, a PSD or a 16-bit PNG most of the bytes copied are never decoded). Both
        read the same bytes because the file is checked unchanged (inode, size, mtime, ctime) from its
        confirmation, before either opened it, to after both closed it; a file written meanwhile is
        "changed", whatever was rendered. Known bytes discard the preview.

        A file with the size and mtime of a recorded version is most likely that version renamed or moved
        (an artist tidying the folder): it is hashed first and rendered only if its bytes are new, so
        tidying costs no renders.
        """
        ahead = None
        if not _likely_known(save.job, save.stat):
            ahead = threading.Thread(target=self.render, args=(save, save.path), name="kaalwatch-render-save")
            ahead.start()
        try:
            before = self.stage(save)
        finally:
            if ahead is not None:
                ahead.join()  # its files exist before the pipeline's clean-up looks for them
        self._judge_copy(save, before)
        if ahead is None:
            self.render(save, save.path)
            self._judge_copy(save, before)  # the render read the file after the copy: still the same file
        if isinstance(save.render_error, ImageError):
            verdicts.remember(self.seen, save.loc, save.path, UNREADABLE, save.st)  # a new stat is looked at again
            reason = artist_facing(save.render_error.message, save.path)
            raise Finished(verdicts.unreadable(self.ws, save.loc, reason))
        if save.render_error is not None:
            raise save.render_error  # not the file's fault (a pool shut down, a full disk): the caller's

    def _judge_copy(self, save: Save, before: os.stat_result) -> None:
        """End the pipeline when the file changed while it was read, or its bytes are a version already."""
        loc = save.loc
        assert save.staged is not None
        if not _unchanged(save.path, save.stat, before, save.size) or incomplete(save.staged):
            # A writer started after the quiet period: what was read may mix two saves.
            raise Finished(Outcome("changed", loc.receipt_id, save.job_id))
        if version_of(save.job, save.sha):
            raise Finished(verdicts.known(self.ws, self.seen, loc, save.stat, save.sha, save.conflict_of))

    def stage(self, save: Save) -> os.stat_result:
        """Copy the bytes into the tool area while hashing them; returns the file's stat as the copy opened it."""
        staging_dir = self.ws.versions_dir / str(save.loc.receipt_id) / safe_component(save.job_id)
        save.staged, save.sha, save.size, before = stage_copy(save.path, staging_dir)
        return before

    def render(self, save: Save, source: Path) -> None:
        """The watermarked preview of ``source`` into staging names beside the previews. Runs on its own
        thread: what it raises is kept as ``save.render_error`` for ``stage_and_render`` to judge."""
        save.predicted = save.completes or _next_number(save.job)
        spec, text, save.key = watermark_for(self.settings, save.order, save.job, save.predicted)
        preview_dir = self.ws.previews_dir / str(save.loc.receipt_id) / safe_component(save.job_id)
        token = uuid.uuid4().hex[:12]
        save.tmp_preview = preview_dir / f"{STAGING_PREFIX}{token}.jpg"
        save.tmp_thumb = preview_dir / f"{STAGING_PREFIX}{token}-thumb.jpg"
        try:
            save.result = self._render(source, save.tmp_preview, save.tmp_thumb, spec, text)
        except Exception as exc:  # handed to the pipeline's thread, never lost with this one
            save.render_error = exc

    def commit(self, save: Save) -> Outcome:
        """Under the order's lock: the copy under its immutable name, the version and its preview recorded."""
        rid, job_id, st = save.loc.receipt_id, save.job_id, save.stat
        number: int | None = None
        replaced: list[str] = []
        rerender = False
        with self.ws.edit(rid) as order:
            job = order.job(job_id)
            if not version_of(job, save.sha):  # else another thread or process recorded these bytes meanwhile
                number, replaced = self._record_version(order, job, save)
                if save.conflict_of is not None:
                    lifecycle.note_conflict(order, job_id, save.loc.job_rel, ACTOR, version=number,
                                            original=save.conflict_of, sha256=save.sha)
                rerender = self._place_preview(order, job, save, number)
                # The save worked: an unreadable earlier save of this item is no longer a problem.
                lifecycle.set_error(order, job_id, None, ACTOR)
        self._drop_tool_files(replaced)
        # Only once the manifest holds it (a kill before must leave the file unjudged for the next rescan).
        # The folder event of that manifest write finds the file in flight or judged: no second ingest.
        self.seen.put_file(rid, save.loc.rel, st.st_size, st.st_mtime_ns, save.sha)
        if number is None:
            return Outcome("known", rid, job_id)
        if rerender:
            self.render_version(rid, job_id, number)
        done = "completed" if save.completes else "saved"
        log.info("order %s job %s: version %s %s", rid, job_id, number, done)
        return Outcome("paired" if save.completes else "version", rid, job_id, number)

    # ------------------------------------------------------------------------------------- commit's parts

    def _record_version(self, order: Order, job: Job, save: Save) -> tuple[int, list[str]]:
        """Rename the staged copy to its immutable name and record it: a new version, or the layered
        source's lone version completed by this export. Returns its number and the files it replaced."""
        loc, pair, st = save.loc, save.pair, save.stat
        complete = save.completes
        if complete is not None and not (pair and still_completes(job, complete, pair[1])):
            complete = None  # the job moved on meanwhile: the export is a save of its own
        number = complete or _next_number(job)
        name = PurePosixPath(loc.rel).name
        kind = classify(name).value
        assert save.staged is not None
        copy = self.ws.version_copy_path(loc.receipt_id, job.job_id, number, save.sha, Path(name).suffix)
        private.make_dir(copy.parent)
        os.replace(save.staged, copy)
        here = loc.order_folder / loc.rel
        save.conflict_of = conflict_original(name, lambda other: here.with_name(other).is_file())
        if complete is not None and pair is not None:
            old = job.version(complete)
            assert old is not None
            replaced = [p for p in (old.copy, old.preview, old.thumb) if p]
            lifecycle.complete_version(order, job.job_id, complete, ACTOR, copy=self.ws.relative_to_tool(copy),
                                       sha256=save.sha, size=save.size, source_name=loc.job_rel, kind=kind,
                                       paired_with=pair[0], paired_sha256=pair[1])
            return number, replaced
        version = Version(number=number, source_name=loc.job_rel, sha256=save.sha, size=save.size,
                          saved_at=datetime.fromtimestamp(st.st_mtime, UTC), copy=self.ws.relative_to_tool(copy),
                          kind=kind, conflict=save.conflict_of is not None, paired_with=pair[0] if pair else None,
                          paired_sha256=pair[1] if pair else None)
        lifecycle.add_version(order, job.job_id, version, ACTOR)
        return number, []

    def _place_preview(self, order: Order, job: Job, save: Save, number: int) -> bool:
        """Move the rendered preview to its name and record it on the version; True when the watermark
        shows another number than ``number`` (another save got in first) and it must be rendered again."""
        result = save.result
        assert result is not None and save.tmp_preview is not None and save.tmp_thumb is not None
        rerender = False
        fields: dict[str, object] = {"kind": result.source_kind.value, "note": result.note}
        if result.preview_path is not None:
            fields.update(width=result.width, height=result.height, low_res=result.low_res)
            if number == save.predicted or "{version}" not in text_template(order, job, self.settings):
                preview, thumb = self.ws.preview_paths(order.receipt_id, job.job_id, number, save.key)
                os.replace(save.tmp_preview, preview)
                os.replace(save.tmp_thumb, thumb)
                fields.update(preview=self.ws.relative_to_tool(preview), thumb=self.ws.relative_to_tool(thumb),
                              preview_key=save.key)
            else:
                rerender = True  # the number in the watermark moved on: render again with the right one
        lifecycle.update_version(order, job.job_id, number, ACTOR, **fields)
        return rerender

    def _drop_tool_files(self, relatives: list[str]) -> None:
        """The layered copy and preview a completed version no longer refers to."""
        for rel in relatives:
            try:
                self.ws.tool_path(rel).unlink(missing_ok=True)
            except (KaalwatchError, OSError):
                continue

    def _sha_of(self, rid: int, path: Path) -> str:
        """The content hash of a file in order ``rid``: from the seen-store when its stat still matches."""
        st = path.stat()
        folder = find_order_folder(path, self.ws.orders_dir)
        rel = path.relative_to(folder).as_posix() if folder else path.name
        seen = self.seen.file(rid, rel)
        if seen and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns):
            return seen.sha256
        sha, _before = file_sha256(path)
        self.seen.put_file(rid, rel, st.st_size, st.st_mtime_ns, sha)
        return sha


def artist_facing(reason: str, staged: Path) -> str:
    """The decoder's reason without the staging copy's name or path: the artist knows only their own file."""
    reason = reason.replace(str(staged), "the file").replace(f"{staged.name}: ", "", 1)
    return " ".join(reason.replace(staged.name, "the file").split())


def clean_staging(ws: Workspace, older_than_seconds: float = 3600.0) -> int:
    """Remove staging files a killed process left behind (never recent ones: another process may be busy)."""
    removed = 0
    limit = time.time() - older_than_seconds
    for base in (ws.versions_dir, ws.previews_dir):
        for root, _dirs, files in os.walk(base):
            for name in files:
                # Also the temp files of atomic writes, and of the preview writer before it used them (".tmp").
                old_temp = name.startswith(".") and name.endswith(".tmp")
                if name.startswith(STAGING_PREFIX) or is_temp_name(name) or old_temp:
                    path = Path(root) / name
                    try:
                        if path.stat().st_mtime < limit:
                            path.unlink()
                            removed += 1
                    except OSError:
                        continue
    return removed


__all__ = ["Ingestor", "Outcome", "clean_staging", "preview_spec", "stage_copy", "watermark_for"]
