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
- a sync client's conflict copy becomes a version flagged ``conflict`` and is listed on the job
  (``lifecycle.note_conflict``): it may hold the artist's newest work, so it is neither hidden nor silent.

**Layered source + export.** A layered or closed file (``.psd``, ``.kra``, ``.ora``, ``.procreate``,
``.afphoto``…) and a raster export with the same stem (``portrait.psd`` + ``portrait.png``) are one save
when the export was written at or after the source and within ``PAIR_WINDOW_SECONDS`` of it: the export
is the version (it is what the buyer sees and what is delivered) and its ``paired_with`` names the
source, which is not versioned on its own. The rule reads only names and mtimes, so a restart or a rescan
decides the same. A source saved without a fresh export is a version of its own (previewed from its
composite, or with a note asking for an export when it has none), so no save is ever lost.

Crash safety: the copy's final name is derived from its number and hash, the manifest is written last,
and ``add_version`` refuses a hash already recorded; a kill at any point leaves, at worst, a staging file
or an unreferenced copy that the next rescan overwrites with the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_module
import time
import uuid
from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from kaalwatch import delivery, lifecycle, private, workflows
from kaalwatch.errors import ImageError, KaalwatchError
from kaalwatch.imaging import (
    FileKind,
    PreviewSpec,
    RenderResult,
    WatermarkSpec,
    classify,
    render_reference_thumbnail,
    spec_key,
    watermark_text,
)
from kaalwatch.model import Job, JobState, Order, Reference, Version
from kaalwatch.naming import safe_component
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace
from kaalwatch.watch.ignore import IgnoreRules, conflict_original
from kaalwatch.watch.locate import Location, Role, find_order_folder, locate_in
from kaalwatch.watch.seen import PAIRED, SeenStore

log = logging.getLogger("kaalwatch.watch")

ACTOR = "watcher"
#: An export written this long after its layered source (or up to 2 s before) counts as the same save.
PAIR_WINDOW_SECONDS = 120.0
_PAIR_EARLY_NS = 2_000_000_000
_CHUNK = 1 << 20
LAYERED_KINDS = frozenset({FileKind.PSD, FileKind.KRA, FileKind.ORA, FileKind.PROCREATE, FileKind.OTHER})
EXPORT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
STAGING_PREFIX = ".staging-"

Renderer = Callable[[Path, Path, Path, PreviewSpec, str], RenderResult]


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: ``action`` is version, known, paired, error, changed, reference,
    misplaced, ignored or gone. ``detail`` never holds buyer text."""

    action: str
    receipt_id: int | None = None
    job_id: str | None = None
    version: int | None = None
    detail: str = ""


def preview_spec(settings: Settings, order: Order, job: Job) -> tuple[PreviewSpec, str]:
    """The preview spec and watermark template of a job: the workflow may override size and template."""
    flow = workflows.by_name(settings.workflows, settings.default_workflow, job.workflow)
    template = flow.watermark or settings.watermark.template
    mark = WatermarkSpec(template=template, opacity=settings.watermark.opacity, angle=settings.watermark.angle,
                         size=settings.watermark.size, color=settings.watermark.color,
                         font_path=settings.watermark.font or None)
    edge = flow.preview_long_edge or settings.preview.long_edge
    spec = PreviewSpec(long_edge=edge, thumb_edge=min(settings.preview.thumb_edge, edge),
                       background=settings.preview.background, jpeg_quality=min(95, settings.preview.jpeg_quality),
                       max_pixels=int(settings.preview.max_megapixels * 1_000_000), watermark=mark)
    return spec, template


def watermark_for(settings: Settings, order: Order, job: Job, number: int) -> tuple[PreviewSpec, str, str]:
    """(spec, text, key) of version ``number``'s preview: the key changes whenever its pixels would."""
    spec, template = preview_spec(settings, order, job)
    first = (order.buyer_name or "").split()
    text = watermark_text(template, {"shop": settings.shop_name, "receipt_id": order.receipt_id,
                                     "buyer_first_name": first[0] if first else "", "version": number})
    return spec, text, spec_key(spec, text)


def export_sibling(path: Path, st: os.stat_result) -> Path | None:
    """For a layered source: its same-stem raster export written with it (see the module docstring)."""
    for suffix in EXPORT_SUFFIXES:
        for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            try:
                other = candidate.stat()
            except OSError:
                continue
            if stat_module.S_ISREG(other.st_mode) and _paired(st.st_mtime_ns, other.st_mtime_ns):
                return candidate
    return None


def layered_sibling(path: Path, st: os.stat_result) -> Path | None:
    """For a raster export: the layered source it was exported from, if saved with it."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return None
    stem = path.stem
    for entry in entries:
        if entry.name == path.name or Path(entry.name).stem != stem:
            continue
        kind = classify(entry.name)
        if kind not in LAYERED_KINDS or entry.name.lower().endswith(EXPORT_SUFFIXES):
            continue
        try:
            other = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat_module.S_ISREG(other.st_mode) and _paired(other.st_mtime_ns, st.st_mtime_ns):
            return Path(entry.path)
    return None


def _paired(source_ns: int, export_ns: int) -> bool:
    return source_ns - _PAIR_EARLY_NS <= export_ns <= source_ns + int(PAIR_WINDOW_SECONDS * 1e9)


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


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)


def _watcher_error(order: Order, job_id: str | None) -> bool:
    """True when the current error of the job was recorded by the watcher (so the watcher may clear it)."""
    target = order.job(job_id) if job_id else order
    if not target.last_error:
        return False
    for event in reversed(order.history):
        if event.event == "error" and event.job_id == job_id:
            return event.actor == ACTOR and event.details.get("message") == target.last_error
    return False


class Ingestor:
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

    # ------------------------------------------------------------------------------------------ entry

    def locate(self, path: Path) -> tuple[Location, Order] | None:
        folder = find_order_folder(path, self.ws.orders_dir)
        if folder is None:
            return None
        order = self.ws.read_folder(folder)
        return locate_in(folder, order, path, self.rules), order

    def ingest(self, path: Path) -> Outcome:
        """Process one path that the stability tracker (or a rescan) found quiet."""
        found = self.locate(path)
        if found is None:
            return Outcome("ignored")
        loc, order = found
        if loc.role is Role.IGNORED:
            return Outcome("ignored", loc.receipt_id)
        if loc.role is Role.MISPLACED:
            return self.misplaced(loc)
        if loc.role is Role.REFERENCE:
            return self.reference(loc, order, path)
        return self.artwork(loc, order, path)

    # ---------------------------------------------------------------------------------------- artwork

    def artwork(self, loc: Location, order: Order, path: Path) -> Outcome:
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        try:
            st = path.stat()
        except OSError:
            return Outcome("gone", rid, job_id)
        if not stat_module.S_ISREG(st.st_mode) or st.st_size == 0:
            return Outcome("gone", rid, job_id)
        job = order.job(job_id)
        known = {v.sha256 for v in job.versions}
        seen = self.seen.file(rid, loc.rel)
        if seen and (seen.size, seen.mtime_ns) == (st.st_size, st.st_mtime_ns) and (
                seen.sha256 in known or seen.sha256 == PAIRED):
            return Outcome("known", rid, job_id)
        kind = classify(path)
        if kind in LAYERED_KINDS and not path.name.lower().endswith(EXPORT_SUFFIXES):
            export = export_sibling(path, st)
            if export is not None:
                self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, PAIRED)
                return Outcome("paired", rid, job_id, detail=export.name)
        staging_dir = self.ws.versions_dir / str(rid) / safe_component(job_id)
        staged, sha, size, before = stage_copy(path, staging_dir)
        if (before.st_size, before.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or size != before.st_size:
            _remove(staged)
            return Outcome("changed", rid, job_id)
        if sha in known:
            _remove(staged)
            self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
            return Outcome("known", rid, job_id)
        layered = layered_sibling(path, st) if kind not in LAYERED_KINDS or path.suffix.lower() in EXPORT_SUFFIXES \
            else None
        predicted = (job.versions[-1].number + 1) if job.versions else 1
        spec, text, key = watermark_for(self.settings, order, job, predicted)
        preview_dir = self.ws.previews_dir / str(rid) / safe_component(job_id)
        token = uuid.uuid4().hex[:12]
        tmp_preview = preview_dir / f"{STAGING_PREFIX}{token}.jpg"
        tmp_thumb = preview_dir / f"{STAGING_PREFIX}{token}-thumb.jpg"
        try:
            result = self._render(staged, tmp_preview, tmp_thumb, spec, text)
        except ImageError as exc:
            _remove(staged, tmp_preview, tmp_thumb)
            message = f"'{loc.job_rel}' cannot be read as an image ({artist_facing(exc.message, staged)}): " \
                      "it was not made a version; save or export it again"
            with self.ws.edit(rid) as fresh:
                lifecycle.set_error(fresh, job_id, message, ACTOR)
            return Outcome("error", rid, job_id, detail=exc.message)
        except BaseException:
            _remove(staged, tmp_preview, tmp_thumb)
            raise
        try:
            number, rerender = self._commit(loc, st, staged, sha, size, kind, layered, result,
                                            predicted, key, text, tmp_preview, tmp_thumb)
        finally:
            _remove(staged, tmp_preview, tmp_thumb)
        self.seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
        if number is None:
            return Outcome("known", rid, job_id)
        if rerender:
            self.render_version(rid, job_id, number)
        log.info("order %s job %s: version %s saved", rid, job_id, number)
        return Outcome("version", rid, job_id, number)

    def _render(self, src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        try:
            return self.render(src, preview, thumb, spec, text)
        except BrokenExecutor:
            # The worker died on this file (a decoder crash, the OOM killer): treat it as undecodable.
            raise ImageError("the preview worker crashed while decoding it") from None

    def _commit(self, loc: Location, st: os.stat_result, staged: Path, sha: str, size: int, kind: FileKind,
                layered: Path | None, result: RenderResult, predicted: int, key: str, text: str,
                tmp_preview: Path, tmp_thumb: Path) -> tuple[int | None, bool]:
        rid, job_id = loc.receipt_id, loc.job_id
        assert job_id is not None
        name = PurePosixPath(loc.rel).name
        rerender = False
        with self.ws.edit(rid) as order:
            job = order.job(job_id)
            if any(v.sha256 == sha for v in job.versions):
                return None, False  # another thread or process recorded these bytes meanwhile
            number = (job.versions[-1].number + 1) if job.versions else 1
            copy = self.ws.version_copy_path(rid, job_id, number, sha, Path(name).suffix)
            private.make_dir(copy.parent)
            os.replace(staged, copy)
            conflict = conflict_original(name) is not None
            version = Version(number=number, source_name=loc.job_rel, sha256=sha, size=size,
                              saved_at=datetime.fromtimestamp(st.st_mtime, UTC), copy=self.ws.relative_to_tool(copy),
                              kind=kind.value, conflict=conflict,
                              paired_with=layered.name if layered else None)
            lifecycle.add_version(order, job_id, version, ACTOR)
            if job.deliverables and job.state is JobState.IN_PROGRESS:
                # This save cleared the approval the files in deliver/ were built from: take them out now,
                # before anyone uploads a version the buyer did not approve.
                removed = delivery.drop_stale(order, delivery.deliver_dir(self.ws, rid), ACTOR)
                log.info("order %s job %s: %d stale deliverable(s) removed", rid, job_id, len(removed))
            if conflict:
                lifecycle.note_conflict(order, job_id, loc.job_rel, ACTOR)
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
            if _watcher_error(order, job_id):
                lifecycle.set_error(order, job_id, None, ACTOR)
        return number, rerender

    # --------------------------------------------------------------------------------------- previews

    def render_version(self, receipt_id: int, job_id: str, number: int) -> bool:
        """(Re-)render one version's preview from its immutable copy; False when there is nothing to do."""
        order = self.ws.load(receipt_id)
        job = order.job(job_id)
        version = job.version(number)
        if version is None:
            return False
        spec, text, key = watermark_for(self.settings, order, job, number)
        preview, thumb = self.ws.preview_paths(receipt_id, job_id, number, key)
        try:
            source = self.ws.tool_path(version.copy)
            result = self._render(source, preview, thumb, spec, text)
        except (ImageError, KaalwatchError, OSError) as exc:
            message = exc.message if isinstance(exc, KaalwatchError) else f"copy unreadable ({exc.strerror})"
            with self.ws.edit(receipt_id) as fresh:
                lifecycle.update_version(fresh, job_id, number, ACTOR, error=f"preview failed: {message}")
            return False
        old: list[str] = []
        with self.ws.edit(receipt_id) as fresh:
            current = fresh.job(job_id).version(number)
            if current is None:
                return False
            old = [p for p in (current.preview, current.thumb) if p]
            fields: dict[str, object] = {"kind": result.source_kind.value, "note": result.note, "error": None}
            if result.preview_path is not None:
                fields.update(preview=self.ws.relative_to_tool(preview), thumb=self.ws.relative_to_tool(thumb),
                              preview_key=key, width=result.width, height=result.height, low_res=result.low_res)
            lifecycle.update_version(fresh, job_id, number, ACTOR, **fields)
        for rel in old:
            try:
                stale = self.ws.tool_path(rel)
            except KaalwatchError:
                continue
            if stale not in (preview.resolve(), thumb.resolve()):
                stale.unlink(missing_ok=True)
        return True

    def stale_previews(self, order: Order, *, rebuild: bool = False) -> list[tuple[str, int]]:
        """(job, version) pairs whose preview is missing, made with other settings, or (rebuild) all."""
        out: list[tuple[str, int]] = []
        for job in order.jobs:
            for version in job.versions:
                if classify(version.copy) is FileKind.OTHER:
                    continue  # closed formats have no preview of their own (their export is a version)
                if rebuild:
                    out.append((job.job_id, version.number))
                    continue
                _, _, key = watermark_for(self.settings, order, job, version.number)
                if version.preview_key != key or not version.preview or not self._exists(version.preview) \
                        or not version.thumb or not self._exists(version.thumb):
                    if version.error and version.preview_key == key:
                        continue  # already failed with these settings; a rebuild retries
                    out.append((job.job_id, version.number))
        return out

    def _exists(self, rel: str) -> bool:
        try:
            return self.ws.tool_path(rel).is_file()
        except KaalwatchError:
            return False

    # ------------------------------------------------------------------------------ references, misplaced

    def reference(self, loc: Location, order: Order, path: Path) -> Outcome:
        """A file the artist dropped into ``references/``: recorded once, with a thumbnail when it is an image."""
        rid = loc.receipt_id
        name = loc.job_rel
        folder_of = {job.job_id: job.folder for job in order.jobs}
        here = PurePosixPath(loc.rel).parent.as_posix()
        for ref in order.references:
            job_folder = folder_of.get(ref.job_id or "", "") if ref.job_id else ""
            if ref.name == name and (PurePosixPath(job_folder) / REFERENCES).as_posix() == here:
                return Outcome("known", rid, loc.job_id)
            if ref.name == name and here == REFERENCES:
                return Outcome("known", rid, loc.job_id)
        try:
            st = path.stat()
        except OSError:
            return Outcome("gone", rid, loc.job_id)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
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

    def misplaced(self, loc: Location) -> Outcome:
        message = (f"'{loc.rel}' is at the top of an order with several items: move it into one item's folder "
                   "so it becomes a version of that item")
        with self.ws.edit(loc.receipt_id) as order:
            lifecycle.set_error(order, None, message, ACTOR)
        return Outcome("misplaced", loc.receipt_id, detail=loc.rel)


def text_template(order: Order, job: Job, settings: Settings) -> str:
    flow = workflows.by_name(settings.workflows, settings.default_workflow, job.workflow)
    return flow.watermark or settings.watermark.template


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
