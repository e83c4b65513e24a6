"""Turn one stable file into a version: hash, compare, immutable copy, manifest, watermarked preview.

Identity of a version is the SHA-256 of its bytes. Per job:

- bytes already recorded as a version (a touch, a sync client re-writing the same file, an old file saved
  under a new name) are *not* a new version, and nothing is written;
- new bytes become version N+1: the file is streamed once into a staging copy in the tool area while it
  is hashed (so the copy is exactly the bytes that were hashed, even if the artist saves again meanwhile),
  rendered into a watermarked preview, and only then, under the order's lock, renamed to its immutable
  name and recorded with ``lifecycle.add_version``;
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
from kaalwatch.errors import ImageError, KaalwatchError
from kaalwatch.imaging import (
    RenderResult,
    classify,
    render_reference_thumbnail,
)
from kaalwatch.imaging.complete import incomplete
from kaalwatch.imaging.decode import check_identity
from kaalwatch.model import Job, Order, Reference, Version
from kaalwatch.naming import safe_component
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace
from kaalwatch.watch.ignore import IgnoreRules, conflict_original, is_artwork_name
from kaalwatch.watch.locate import Location, Role, find_order_folder, locate_in
from kaalwatch.watch.pairing import export_sibling, file_sha256, is_layered, layered_sibling
from kaalwatch.watch.previews import ACTOR, PreviewMixin, Renderer, preview_spec, text_template, watermark_for
from kaalwatch.watch.seen import SeenStore
from kaalwatch.watch.stability import Signature

log = logging.getLogger("kaalwatch.watch")

_CHUNK = 1 << 20
STAGING_PREFIX = ".staging-"



@dataclass(frozen=True)
class Outcome:
    """What happened to one file: ``action`` is version, known, paired, error, changed, unfinished,
    reference, misplaced, ignored or gone. ``detail`` never holds buyer text."""

    action: str
    receipt_id: int | None = None
    job_id: str | None = None
    version: int | None = None
    detail: str = ""


def stage_copy(src: Path, folder: Path) -> tuple[Path, str, int, os.stat_result]:
    """Stream ``src`` into a staging file in ``folder`` while hashing it; returns (copy, sha256, size, stat
    before reading). The artist's file is only read."""
    private.make_dir(folder)
    suffix = src.suffix.lower() if src.suffix.isascii() and len(src.suffix) <= 12 else ".bin"
    staged = folder / f"{STAGING_PREFIX}{uuid.uuid4().hex}{suffix}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(src, "rb") as fh:
            before = os.fstat(fh.fileno())
            with open(staged, "wb") as out:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        os.chmod(staged, private.read_only_mode())  # an immutable copy, private by default
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged, digest.hexdigest(), size, before


#: The seen-store's verdicts that are not content hashes (nothing matches them): a file its format said was
#: cut off, one that cannot be decoded, and one that needs no work (a known reference, litter, misplaced).
UNFINISHED = "unfinished"
UNREADABLE = "unreadable"
JUDGED = "judged"


def _number_of(job: Job, sha: str) -> int | None:
    """The version whose bytes, or whose paired layered source's bytes, are ``sha``."""
    return next((v.number for v in reversed(job.versions) if sha in (v.sha256, v.paired_sha256)), None)


def _unchanged(path: Path, stable: os.stat_result, before: os.stat_result, size: int) -> bool:
    """The file kept its stable size and mtime from before the copy to after it, and all of it was read."""
    try:
        after = path.stat()
    except OSError:
        return False
    signature = (stable.st_size, stable.st_mtime_ns)
    return (before.st_size, before.st_mtime_ns) == signature == (after.st_size, after.st_mtime_ns) \
        and size == stable.st_size and after.st_ctime_ns == before.st_ctime_ns


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


class Ingestor(PreviewMixin):
    """Turns stable paths into versions, references and previews. Safe to call from several threads: the
    order lock serialises manifest changes and a second call with the same bytes finds them recorded.

    Edge cases handled: the path vanished or is no longer a regular file; the file changed while it was
    copied (``changed``: the caller arms it again); the order folder was renamed after the event (found
    again by the caller's rescan); identical bytes under another name; conflict copies; layered source +
    export pairing; undecodable files (retried, never given up); a preview worker that crashed.
    """

    def __init__(self, ws: Workspace, settings: Settings, render: Renderer, seen: SeenStore,
                 rules: IgnoreRules | None = None) -> None:
        self.ws = ws
        self.settings = settings
        self.render = render
        self.seen = seen
        self.rules = rules or IgnoreRules(settings.watcher.ignore_patterns)
        self.ingests = 0
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ entry

    def locate(self, path: Path) -> tuple[Location, Order] | None:
        folder = find_order_folder(path, self.ws.orders_dir)
        if folder is None:
            return None
        order = self.ws.read_folder(folder)
        return locate_in(folder, order, path, self.rules), order

    def ingest(self, path: Path, stable: Signature | None = None) -> Outcome:
        """Process one path that the stability tracker (or a rescan) found quiet; ``stable`` is the
        (size, mtime_ns) it kept while quiet: other bytes by now mean a writer started meanwhile."""
        with self._count_lock:
            self.ingests += 1  # the cost figure of issue 23: work must grow with what changed
        found = self.locate(path)
        if found is None:
            return Outcome("ignored")
        loc, order = found
        if loc.role is Role.IGNORED:
            self._judged(loc, path)
            return Outcome("ignored", loc.receipt_id)
        if loc.role is Role.MISPLACED:
            return self.misplaced(loc, path)
        folder = find_order_folder(path, self.ws.orders_dir)
        if "watcher" in order.errors and folder is not None:
            self.misplaced_gone(folder, order)
        if loc.role is Role.REFERENCE:
            return self.reference(loc, order, path)
        return self.artwork(loc, order, path, stable)

    # ---------------------------------------------------------------------------------------- artwork

    def artwork(self, loc: Location, order: Order, path: Path, stable: Signature | None = None) -> Outcome:
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        try:
            st = path.stat()
        except OSError:
            return Outcome("gone", rid, job_id)
        if not stat_module.S_ISREG(st.st_mode) or st.st_size == 0:
            return Outcome("gone", rid, job_id)
        job = order.job(job_id)
        conflict_of = conflict_original(path.name, lambda name: (path.parent / name).is_file())
        seen = self.seen.file(rid, loc.rel)
        if seen and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns) and _number_of(job, seen.sha256):
            if conflict_of is None:
                return Outcome("known", rid, job_id)
            return self._known(loc, path, st, seen.sha256, conflict_of)
        if stable is not None and stable != (st.st_size, st.st_mtime_ns):
            return Outcome("changed", rid, job_id)
        if reason := incomplete(path):
            try:
                check_identity(path)
            except ImageError as exc:  # not cut off but something else (a ZIP posing as PNG, a polyglot)
                self._judged(loc, path, UNREADABLE, st)
                return self._unreadable(loc, artist_facing(exc.message, path))
            return self._unfinished(loc, st, reason)
        if is_layered(path.name):
            export = export_sibling(path, st)
            if export is not None:
                return self._pair_source(loc, path, st, export, conflict_of)
        staging_dir = self.ws.versions_dir / str(rid) / safe_component(job_id)
        staged, sha, size, before = stage_copy(path, staging_dir)
        if not _unchanged(path, st, before, size) or incomplete(staged):
            # A writer started after the quiet period: what was read may mix two saves.
            _remove(staged)
            return Outcome("changed", rid, job_id)
        if _number_of(job, sha):
            _remove(staged)
            return self._known(loc, path, st, sha, conflict_of)
        layered = None if is_layered(path.name) else layered_sibling(path, st)
        try:
            return self._new_version(loc, order, path, st, staged, sha, size, layered)
        finally:
            _remove(staged)

    def _new_version(self, loc: Location, order: Order, path: Path, st: os.stat_result, staged: Path, sha: str,
                     size: int, layered: Path | None) -> Outcome:
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        job = order.job(job_id)
        pair: tuple[str, str] | None = None
        complete: int | None = None
        if layered is not None:
            layered_rel = layered.relative_to(loc.order_folder / job.folder).as_posix()
            layered_sha = self._sha_of(rid, layered)
            pair = (layered_rel, layered_sha)
            latest = job.latest
            if latest is not None and latest.sha256 == layered_sha and latest.paired_sha256 is None \
                    and job.approved_version != latest.number and all(p.version != latest.number for p in job.proofs):
                complete = latest.number  # the layered save was versioned alone: its export completes it
        predicted = complete or ((job.versions[-1].number + 1) if job.versions else 1)
        spec, text, key = watermark_for(self.settings, order, job, predicted)
        preview_dir = self.ws.previews_dir / str(rid) / safe_component(job_id)
        token = uuid.uuid4().hex[:12]
        tmp_preview = preview_dir / f"{STAGING_PREFIX}{token}.jpg"
        tmp_thumb = preview_dir / f"{STAGING_PREFIX}{token}-thumb.jpg"
        try:
            result = self._render(staged, tmp_preview, tmp_thumb, spec, text)
        except ImageError as exc:
            _remove(tmp_preview, tmp_thumb)
            self._judged(loc, path, UNREADABLE, st)  # the next save (a new stat) is looked at again
            return self._unreadable(loc, artist_facing(exc.message, staged))
        try:
            number, rerender = self._commit(loc, st, staged, sha, size, pair, complete, result,
                                            predicted, key, text, tmp_preview, tmp_thumb)
        finally:
            _remove(tmp_preview, tmp_thumb)
        # Only once the manifest holds it (a kill before must leave the file unjudged for the next rescan).
        # The folder event of that manifest write finds the file in flight or judged: no second ingest.
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
        if number is None:
            return Outcome("known", rid, job_id)
        if rerender:
            self.render_version(rid, job_id, number)
        log.info("order %s job %s: version %s %s", rid, job_id, number, "completed" if complete else "saved")
        return Outcome("paired" if complete else "version", rid, job_id, number)

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

    def _known(self, loc: Location, path: Path, st: os.stat_result, sha: str, conflict_of: str | None) -> Outcome:
        """Bytes that are already version N (or its layered source) under this name: a conflict copy is
        flagged; a file that is no longer where version N came from was moved or renamed (history only)."""
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        order = self.ws.load(rid)
        job = order.job(job_id)
        number = _number_of(job, sha)
        if number is None:
            return Outcome("known", rid, job_id)
        version = job.version(number)
        assert version is not None
        old = version.source_name if version.sha256 == sha else (version.paired_with or "")
        job_folder = loc.order_folder / job.folder
        moved = conflict_of is None and old != loc.job_rel and not (job_folder / old).exists()
        if conflict_of is not None or moved:
            with self.ws.edit(rid) as fresh:
                if conflict_of is not None:
                    lifecycle.note_conflict(fresh, job_id, loc.job_rel, ACTOR, version=number, original=conflict_of,
                                            sha256=sha)
                else:
                    lifecycle.record_move(fresh, job_id, number, old, loc.job_rel, ACTOR)
        # Remembered after the manifest change: a kill in between leaves the file to be judged again.
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
        return Outcome("known", rid, job_id, number)

    def _pair_source(self, loc: Location, path: Path, st: os.stat_result, export: Path,
                     conflict_of: str | None) -> Outcome:
        """A layered file whose export is beside it: recorded on the export's version, never one of its own."""
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        sha, before = file_sha256(path)
        if (before.st_size, before.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            return Outcome("changed", rid, job_id)
        order = self.ws.load(rid)
        job = order.job(job_id)
        if _number_of(job, sha):
            return self._known(loc, path, st, sha, conflict_of)
        export_seen = self.seen.file(rid, PurePosixPath(loc.rel).with_name(export.name).as_posix())
        number = _number_of(job, export_seen.sha256) if export_seen else None
        if number is not None:
            with self.ws.edit(rid) as fresh:
                lifecycle.update_version(fresh, job_id, number, ACTOR, paired_with=loc.job_rel, paired_sha256=sha)
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)  # its export's version names it now
        return Outcome("paired", rid, job_id, number, detail=export.name)

    def _unreadable(self, loc: Location, reason: str) -> Outcome:
        message = f"'{loc.job_rel}' cannot be read as an image ({reason}): it was not made a version; " \
                  "save or export it again"
        with self.ws.edit(loc.receipt_id) as fresh:
            lifecycle.set_error(fresh, loc.job_id, message, ACTOR)
        return Outcome("error", loc.receipt_id, loc.job_id, detail=reason)

    def _unfinished(self, loc: Location, st: os.stat_result, reason: str) -> Outcome:
        """A file its format says is cut off: "still being written", no version. The next event (the writer
        going on) or a changed stat at a rescan looks again; an abandoned one is not re-read meanwhile."""
        rid, job_id = loc.receipt_id, loc.job_id
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, UNFINISHED)
        message = (f"'{loc.job_rel}' is still being written or was cut off (it {reason}): no version yet; "
                   "it becomes one when the save completes, or save it again")
        with self.ws.edit(rid) as fresh:
            lifecycle.set_error(fresh, job_id, message, ACTOR)  # recorded once: the same message is no change
        return Outcome("unfinished", rid, job_id, detail=reason)

    def _commit(self, loc: Location, st: os.stat_result, staged: Path, sha: str, size: int,
                pair: tuple[str, str] | None, complete: int | None, result: RenderResult, predicted: int, key: str,
                text: str, tmp_preview: Path, tmp_thumb: Path) -> tuple[int | None, bool]:
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        name = PurePosixPath(loc.rel).name
        kind = classify(name).value
        rerender = False
        replaced: list[str] = []
        with self.ws.edit(rid) as order:
            job = order.job(job_id)
            if _number_of(job, sha):
                return None, False  # another thread or process recorded these bytes meanwhile
            if complete is not None and (job.latest is None or job.latest.number != complete
                                         or job.latest.sha256 != (pair[1] if pair else None)):
                complete = None  # the job moved on meanwhile: the export is a save of its own
            number = complete or ((job.versions[-1].number + 1) if job.versions else 1)
            copy = self.ws.version_copy_path(rid, job_id, number, sha, Path(name).suffix)
            private.make_dir(copy.parent)
            os.replace(staged, copy)
            conflict_of = conflict_original(name, lambda other: (loc.order_folder / loc.rel).with_name(other).is_file())
            if complete is not None and pair is not None:
                old = job.version(complete)
                assert old is not None
                replaced = [p for p in (old.copy, old.preview, old.thumb) if p]
                lifecycle.complete_version(order, job_id, complete, ACTOR, copy=self.ws.relative_to_tool(copy),
                                           sha256=sha, size=size, source_name=loc.job_rel, kind=kind,
                                           paired_with=pair[0], paired_sha256=pair[1])
            else:
                version = Version(number=number, source_name=loc.job_rel, sha256=sha, size=size,
                                  saved_at=datetime.fromtimestamp(st.st_mtime, UTC),
                                  copy=self.ws.relative_to_tool(copy), kind=kind, conflict=conflict_of is not None,
                                  paired_with=pair[0] if pair else None, paired_sha256=pair[1] if pair else None)
                lifecycle.add_version(order, job_id, version, ACTOR)
            if conflict_of is not None:
                lifecycle.note_conflict(order, job_id, loc.job_rel, ACTOR, version=number, original=conflict_of,
                                        sha256=sha)
            fields: dict[str, object] = {"kind": result.source_kind.value, "note": result.note}
            if result.preview_path is not None:
                fields.update(width=result.width, height=result.height, low_res=result.low_res)
                if number == predicted or "{version}" not in text_template(order, job, self.settings):
                    preview, thumb = self.ws.preview_paths(rid, job_id, number, key)
                    os.replace(tmp_preview, preview)
                    os.replace(tmp_thumb, thumb)
                    fields.update(preview=self.ws.relative_to_tool(preview), thumb=self.ws.relative_to_tool(thumb),
                                  preview_key=key)
                else:
                    rerender = True  # the number in the watermark moved on: render again with the right one
            lifecycle.update_version(order, job_id, number, ACTOR, **fields)
            # The save worked: an unreadable earlier save of this item is no longer a problem.
            lifecycle.set_error(order, job_id, None, ACTOR)
        self._drop_tool_files(replaced)
        return number, rerender

    def _drop_tool_files(self, relatives: list[str]) -> None:
        """The layered copy and preview a completed version no longer refers to."""
        for rel in relatives:
            try:
                self.ws.tool_path(rel).unlink(missing_ok=True)
            except (KaalwatchError, OSError):
                continue

    # ------------------------------------------------------------------------------ references, misplaced

    def reference(self, loc: Location, order: Order, path: Path) -> Outcome:
        """A file the artist dropped into ``references/``: recorded once, with a thumbnail when it is an image."""
        rid = loc.receipt_id
        name = loc.job_rel
        folder_of = {job.job_id: job.folder for job in order.jobs}
        here = PurePosixPath(loc.rel).parent.as_posix()
        try:
            st = path.stat()
        except OSError:
            return Outcome("gone", rid, loc.job_id)
        for ref in order.references:
            job_folder = folder_of.get(ref.job_id or "", "") if ref.job_id else ""
            if ref.name == name and here in ((PurePosixPath(job_folder) / REFERENCES).as_posix(), REFERENCES):
                # Judged: a sync download or an earlier drop. Remembered, so rescans skip it while unchanged.
                self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, ref.sha256 or JUDGED)
                return Outcome("known", rid, loc.job_id)
        sha, _before = file_sha256(path)
        thumb_rel: str | None = None
        error: str | None = None
        out = self.ws.previews_dir / str(rid) / REFERENCES / f"{sha[:16]}-thumb.jpg"
        try:
            render_reference_thumbnail(path, out, edge=self.settings.preview.thumb_edge,
                                       max_pixels=int(self.settings.preview.max_megapixels * 1_000_000))
            thumb_rel = self.ws.relative_to_tool(out)
        except ImageError as exc:
            error = exc.message
        ref = Reference(name=name, source="artist", job_id=loc.job_id, sha256=sha, size=st.st_size,
                        status="ok" if error is None else "failed", error=error, thumb=thumb_rel)
        with self.ws.edit(rid) as fresh:
            added = lifecycle.add_reference(fresh, ref, ACTOR)
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
        return Outcome("reference" if added else "known", rid, loc.job_id)

    def misplaced_gone(self, folder: Path, order: Order) -> None:
        """Clear the order's "move this file into an item's folder" warning once no such file is left."""
        if len(order.jobs) < 2:
            return
        try:
            top = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
        except OSError:
            return
        if any(is_artwork_name(name) and not self.rules.ignores(name) for name in top):
            return
        with self.ws.edit(order.receipt_id) as fresh:
            lifecycle.set_error(fresh, None, None, ACTOR)

    def misplaced(self, loc: Location, path: Path) -> Outcome:
        message = (f"'{loc.rel}' is at the top of an order with several items: move it into one item's folder "
                   "so it becomes a version of that item")
        with self.ws.edit(loc.receipt_id) as order:
            lifecycle.set_error(order, None, message, ACTOR)
        self._judged(loc, path)
        return Outcome("misplaced", loc.receipt_id, detail=loc.rel)

    def _judged(self, loc: Location, path: Path, verdict: str = JUDGED, st: os.stat_result | None = None) -> None:
        """Remember the stat of a file that needs no more work while it stays as it is (rescans skip it)."""
        try:
            st = st or path.stat()
        except OSError:
            return
        self.seen.put_file(loc.receipt_id, loc.rel, st.st_size, st.st_mtime_ns, verdict)


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
                if name.startswith(STAGING_PREFIX) or (name.startswith(".") and name.endswith(".tmp")):
                    path = Path(root) / name
                    try:
                        if path.stat().st_mtime < limit:
                            path.unlink()
                            removed += 1
                    except OSError:
                        continue
    return removed


__all__ = ["Ingestor", "Outcome", "clean_staging", "preview_spec", "watermark_for"]
