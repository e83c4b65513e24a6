"""What the watcher records when a file does not become a new version, and the ``Outcome`` of every file.

The ingest pipeline (``ingest``) ends here early: known bytes (moved, renamed, or a sync client's conflict
copy), a layered source recorded on its export's version, a file that is still being written or cannot be
read, artwork at the top of a multi-item order, and a reference the artist dropped into ``references/``.
Each writes through ``lifecycle`` under the order's lock and then remembers the file's stat in the
seen-store, so an unchanged file costs no work at the next rescan (a kill in between leaves the file to be
judged again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kaalwatch import lifecycle
from kaalwatch.errors import ImageError
from kaalwatch.imaging import render_reference_thumbnail
from kaalwatch.model import Order, Reference
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace
from kaalwatch.watch.ignore import IgnoreRules, is_artwork_name
from kaalwatch.watch.locate import Location
from kaalwatch.watch.pairing import file_sha256, version_of
from kaalwatch.watch.previews import ACTOR
from kaalwatch.watch.seen import SeenStore

#: The seen-store's verdicts that are not content hashes (nothing matches them): a file its format said was
#: cut off, one that cannot be decoded, and one that needs no work (a known reference, litter, misplaced).
UNFINISHED = "unfinished"
UNREADABLE = "unreadable"
JUDGED = "judged"


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: ``action`` is version, known, paired, error, changed, unfinished,
    reference, misplaced, ignored or gone. ``detail`` never holds buyer text."""

    action: str
    receipt_id: int | None = None
    job_id: str | None = None
    version: int | None = None
    detail: str = ""


def remember(seen: SeenStore, loc: Location, path: Path, verdict: str = JUDGED,
             st: os.stat_result | None = None) -> None:
    """Remember the stat of a file that needs no more work while it stays as it is (rescans skip it)."""
    try:
        st = st or path.stat()
    except OSError:
        return
    seen.put_file(loc.receipt_id, loc.rel, st.st_size, st.st_mtime_ns, verdict)


def known(ws: Workspace, seen: SeenStore, loc: Location, st: os.stat_result, sha: str,
          conflict_of: str | None) -> Outcome:
    """Bytes that are already version N (or its layered source) under this name: a conflict copy is
    flagged; a file that is no longer where version N came from was moved or renamed (history only)."""
    rid, job_id = loc.receipt_id, loc.job_id
    assert job_id is not None
    job = ws.load(rid).job(job_id)
    number = version_of(job, sha)
    if number is None:
        return Outcome("known", rid, job_id)
    version = job.version(number)
    assert version is not None
    old = version.source_name if version.sha256 == sha else (version.paired_with or "")
    job_folder = loc.order_folder / job.folder
    moved = conflict_of is None and old != loc.job_rel and not (job_folder / old).exists()
    if conflict_of is not None or moved:
        with ws.edit(rid) as fresh:
            if conflict_of is not None:
                lifecycle.note_conflict(fresh, job_id, loc.job_rel, ACTOR, version=number, original=conflict_of,
                                        sha256=sha)
            else:
                lifecycle.record_move(fresh, job_id, number, old, loc.job_rel, ACTOR)
    # Remembered after the manifest change: a kill in between leaves the file to be judged again.
    seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
    return Outcome("known", rid, job_id, number)


def paired_source(ws: Workspace, seen: SeenStore, loc: Location, path: Path, st: os.stat_result, export: Path,
                  conflict_of: str | None) -> Outcome:
    """A layered file whose export is beside it: recorded on the export's version, never one of its own."""
    rid, job_id = loc.receipt_id, loc.job_id
    assert job_id is not None
    sha, before = file_sha256(path)
    if (before.st_size, before.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return Outcome("changed", rid, job_id)
    job = ws.load(rid).job(job_id)
    if version_of(job, sha):
        return known(ws, seen, loc, st, sha, conflict_of)
    export_seen = seen.file(rid, PurePosixPath(loc.rel).with_name(export.name).as_posix())
    number = version_of(job, export_seen.sha256) if export_seen else None
    if number is not None:
        with ws.edit(rid) as fresh:
            lifecycle.update_version(fresh, job_id, number, ACTOR, paired_with=loc.job_rel, paired_sha256=sha)
    seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)  # its export's version names it now
    return Outcome("paired", rid, job_id, number, detail=export.name)


def unreadable(ws: Workspace, loc: Location, reason: str) -> Outcome:
    """Bytes that do not decode: no version; the job's error names the file until a later good save."""
    message = f"'{loc.job_rel}' cannot be read as an image ({reason}): it was not made a version; " \
              "save or export it again"
    with ws.edit(loc.receipt_id) as fresh:
        lifecycle.set_error(fresh, loc.job_id, message, ACTOR)
    return Outcome("error", loc.receipt_id, loc.job_id, detail=reason)


def unfinished(ws: Workspace, seen: SeenStore, loc: Location, st: os.stat_result, reason: str) -> Outcome:
    """A file its format says is cut off: "still being written", no version. The next event (the writer
    going on) or a changed stat at a rescan looks again; an abandoned one is not re-read meanwhile."""
    rid, job_id = loc.receipt_id, loc.job_id
    seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, UNFINISHED)
    message = (f"'{loc.job_rel}' is still being written or was cut off (it {reason}): no version yet; "
               "it becomes one when the save completes, or save it again")
    with ws.edit(rid) as fresh:
        lifecycle.set_error(fresh, job_id, message, ACTOR)  # recorded once: the same message is no change
    return Outcome("unfinished", rid, job_id, detail=reason)


def misplaced(ws: Workspace, seen: SeenStore, loc: Location, path: Path) -> Outcome:
    """Artwork at the top of an order with several items: the order says which file to move."""
    message = (f"'{loc.rel}' is at the top of an order with several items: move it into one item's folder "
               "so it becomes a version of that item")
    with ws.edit(loc.receipt_id) as order:
        lifecycle.set_error(order, None, message, ACTOR)
    remember(seen, loc, path)
    return Outcome("misplaced", loc.receipt_id, detail=loc.rel)


def clear_misplaced(ws: Workspace, rules: IgnoreRules, folder: Path, order: Order) -> None:
    """Clear the order's "move this file into an item's folder" warning once no such file is left."""
    if len(order.jobs) < 2:
        return
    try:
        top = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return
    if any(is_artwork_name(name) and not rules.ignores(name) for name in top):
        return
    with ws.edit(order.receipt_id) as fresh:
        lifecycle.set_error(fresh, None, None, ACTOR)


def reference(ws: Workspace, seen: SeenStore, settings: Settings, loc: Location, order: Order,
              path: Path) -> Outcome:
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
            seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, ref.sha256 or JUDGED)
            return Outcome("known", rid, loc.job_id)
    sha, _before = file_sha256(path)
    thumb_rel: str | None = None
    error: str | None = None
    out = ws.previews_dir / str(rid) / REFERENCES / f"{sha[:16]}-thumb.jpg"
    try:
        render_reference_thumbnail(path, out, edge=settings.preview.thumb_edge,
                                   max_pixels=int(settings.preview.max_megapixels * 1_000_000))
        thumb_rel = ws.relative_to_tool(out)
    except ImageError as exc:
        error = exc.message
    ref = Reference(name=name, source="artist", job_id=loc.job_id, sha256=sha, size=st.st_size,
                    status="ok" if error is None else "failed", error=error, thumb=thumb_rel)
    with ws.edit(rid) as fresh:
        added = lifecycle.add_reference(fresh, ref, ACTOR)
    seen.put_file(rid, loc.rel, st.st_size, st.st_mtime_ns, sha)
    return Outcome("reference" if added else "known", rid, loc.job_id)
