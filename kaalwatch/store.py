"""The workspace on disk: order folders, their manifests, the tool-owned area, locks and the index.

Layout (``settings.workspace``)::

    orders/<receipt_id> <buyer> - <listing>/    one folder per Etsy order, the artist's to use
        order.yaml                              the manifest (written only by Workspace.edit/create)
        references/                             buyer uploads, the listing's style sample, hand-dropped files
        deliver/                                deliverables for Etsy's order page
        <n> <listing>/                          one subfolder per job when an order has several items
    .kaalwatch/                                 the tool's own area, never watched, not meant to be synced
        versions/<receipt_id>/<job_id>/         immutable copies of every version
        previews/<receipt_id>/<job_id>/         watermarked previews and thumbnails
        index.sqlite                            a summary of every manifest, for fast listing
        locks/ logs/ state/ secrets/

The identity of an order folder is its manifest, not its name: renamed or moved folders inside
``orders/`` are found again by scanning for ``order.yaml``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from kaalwatch import naming, private
from kaalwatch.atomic import atomic_write_bytes, atomic_write_text
from kaalwatch.deliver_folder import drop_stale
from kaalwatch.errors import ManifestError, NotFoundError, WorkspaceError
from kaalwatch.model import ACTIVE_STATES, JobState, Order, iso, order_from_dict, order_to_dict, parse_time
from kaalwatch.search import TOKENIZER, job_text, match_query
from kaalwatch.settings import Settings
from kaalwatch.steps import outlook

log = logging.getLogger(__name__)

MANIFEST = "order.yaml"
REFERENCES = "references"
DELIVER = "deliver"
LOCK_TIMEOUT_SECONDS = 30.0

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Bumped whenever the tables below change: an index of another version is dropped and rebuilt from the
# manifests (it is only a summary of them).
INDEX_VERSION = 3

_INDEX_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS orders (
    receipt_id INTEGER PRIMARY KEY,
    folder TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    buyer TEXT NOT NULL,
    ordered_at TEXT,
    ship_by TEXT,
    state TEXT NOT NULL,
    etsy_status TEXT NOT NULL,
    errors TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    receipt_id INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    title TEXT NOT NULL,
    workflow TEXT NOT NULL,
    state TEXT NOT NULL,
    active INTEGER NOT NULL,
    ship_by TEXT,
    buyer TEXT NOT NULL,
    versions INTEGER NOT NULL,
    latest_version INTEGER,
    latest_thumb TEXT,
    errors TEXT NOT NULL,
    step TEXT NOT NULL,
    since TEXT,
    marker TEXT,
    items INTEGER NOT NULL,
    position INTEGER NOT NULL,
    photo INTEGER,
    PRIMARY KEY (receipt_id, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_ship ON jobs (active, ship_by);
CREATE VIRTUAL TABLE IF NOT EXISTS search USING fts5 (text, tokenize='{TOKENIZER}');
CREATE TABLE IF NOT EXISTS broken (
    folder TEXT PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    error TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class JobRow:
    """One job as the index knows it (enough for lists, without parsing manifests)."""

    receipt_id: int
    job_id: str
    title: str
    workflow: str
    state: JobState
    ship_by: datetime | None
    buyer: str
    versions: int
    latest_version: int | None
    latest_thumb: str | None
    errors: tuple[tuple[str, str], ...]  # (source, message) of the job's and its order's warnings
    step: str  # the Today group (kaalwatch.steps.GROUPS)
    since: datetime | None  # when the current wait began
    marker: str | None  # a stop-work marker (cancelled, refunded, completed without approval)
    items: int  # jobs in the order
    position: int  # this job's place in the order (1-based)
    photo: int | None  # the buyer photo to show while there is no version (its place in the references)
    folder: str


@dataclass(frozen=True)
class IndexReport:
    scanned: int
    parsed: int
    removed: int
    broken: list[tuple[str, str]]


def dump_manifest(order: Order) -> str:
    return yaml.dump(order_to_dict(order), Dumper=_SafeDumper, sort_keys=False, allow_unicode=True, width=100)


def parse_manifest(text: str, source: str) -> Order:
    """Parse manifest text; errors name the file and line and leave the file untouched."""
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a SafeLoader (the C one when built)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ManifestError(
            f"{source}:{line}: {problem}", hint="fix or restore the file; it was left as it is"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{source}: unreadable ({exc.__class__.__name__})") from None
    return order_from_dict(data, source)


def _disk_error(exc: OSError, what: Path) -> WorkspaceError:
    if exc.errno == errno.ENOSPC:
        return WorkspaceError(f"disk full while writing {what}", hint="free some space; nothing was changed")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WorkspaceError(f"cannot write {what}: {exc.strerror}", hint="check the workspace's permissions")
    return WorkspaceError(f"cannot write {what}: {exc.strerror or exc}")


def _remove_empty_tree(folder: Path | None) -> None:
    """Remove ``folder`` and its subfolders bottom-up if they are empty; never deletes a file."""
    if folder is None:
        return
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


class Workspace:
    """The workspace folder. Safe to share between threads; several processes coordinate by file locks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.workspace
        self.orders_dir = self.root / "orders"
        self.tool_dir = self.root / ".kaalwatch"
        self.versions_dir = self.tool_dir / "versions"
        self.previews_dir = self.tool_dir / "previews"
        self.tiles_dir = self.tool_dir / "tiles"  # the viewer's tile cache (review_app/views/tiles.py)
        self.locks_dir = self.tool_dir / "locks"
        self.logs_dir = self.tool_dir / "logs"
        self.state_dir = self.tool_dir / "state"
        self.secrets_dir = self.tool_dir / "secrets"
        self.index_path = self.tool_dir / "index.sqlite"
        self._local = threading.local()
        # After one full scan in this process, an order missing from the index is taken as absent: every
        # writer (this process or another) updates the shared index, so a miss needs no new scan. Without
        # this a first import of N orders would rescan orders/ N times.
        self._scanned = False

    # ---------------------------------------------------------------------------------------- setup

    def create(self) -> None:
        """Create the folders (idempotent), private to the user (see :mod:`kaalwatch.private`)."""
        try:
            for folder in (self.root, self.tool_dir, self.orders_dir, self.versions_dir, self.previews_dir,
                           self.locks_dir, self.logs_dir, self.state_dir, self.secrets_dir):
                private.make_dir(folder)
            os.chmod(self.secrets_dir, 0o700)  # secrets stay private even when private_files is off
        except OSError as exc:
            raise _disk_error(exc, self.root) from None

    def check(self) -> None:
        """Refuse to start on a workspace that is missing or cannot be written (read-only, no permission)."""
        if not self.orders_dir.is_dir() or not self.tool_dir.is_dir():
            raise WorkspaceError(f"no workspace at {self.root}", hint="run `kaalwatch init` first")
        probe = self.tool_dir / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise WorkspaceError(
                f"workspace {self.root} is not writable: {exc.strerror}",
                hint="remount it read-write or fix permissions",
            ) from None

    # ---------------------------------------------------------------------------------------- paths

    def lock(self, receipt_id: int) -> FileLock:
        """The per-order lock; holds across threads and processes (the daemon and a CLI command).

        One instance per lock file in this process (``is_singleton``), re-entrant in the thread holding it:
        retention checks, deletes and edits an order inside one critical section that calls :meth:`edit`.
        """
        private.make_dir(self.locks_dir)
        return FileLock(str(self.locks_dir / f"{int(receipt_id)}.lock"), timeout=LOCK_TIMEOUT_SECONDS,
                        mode=private.file_mode(), is_singleton=True)

    def job_dir(self, order_folder: Path, order: Order, job_id: str) -> Path:
        return order_folder / order.job(job_id).folder if order.job(job_id).folder else order_folder

    def version_copy_path(self, receipt_id: int, job_id: str, number: int, sha256: str, suffix: str) -> Path:
        safe_suffix = suffix.lower() if suffix.isascii() and len(suffix) <= 12 else ".bin"
        return self.versions_dir / str(int(receipt_id)) / naming.safe_component(job_id) / (
            f"v{number:03d}-{sha256[:12]}{safe_suffix}"
        )

    def preview_paths(self, receipt_id: int, job_id: str, number: int, key: str) -> tuple[Path, Path]:
        folder = self.previews_dir / str(int(receipt_id)) / naming.safe_component(job_id)
        return folder / f"v{number:03d}-{key}.jpg", folder / f"v{number:03d}-{key}-thumb.jpg"

    def tool_path(self, relative: str) -> Path:
        """Resolve a path stored in a manifest (relative to the tool area) and refuse any escape."""
        candidate = (self.tool_dir / relative).resolve()
        base = self.tool_dir.resolve()
        if base not in candidate.parents:
            raise NotFoundError(f"{relative!r} is not inside the tool area")
        return candidate

    def relative_to_tool(self, path: Path) -> str:
        return path.resolve().relative_to(self.tool_dir.resolve()).as_posix()

    # ------------------------------------------------------------------------------------- manifests

    def read_folder(self, folder: Path) -> Order:
        """Parse ``folder/order.yaml``."""
        path = folder / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"no {MANIFEST} in {folder}") from None
        except UnicodeDecodeError:
            raise ManifestError(f"{path}: not UTF-8 text", hint="restore the file; it was left as it is") from None
        return parse_manifest(text, str(path))

    def folder_of(self, receipt_id: int) -> Path:
        """The order's folder wherever the artist moved it inside ``orders/``."""
        row = self._db().execute("SELECT folder FROM orders WHERE receipt_id = ?", (int(receipt_id),)).fetchone()
        if row:
            folder = self.orders_dir / row[0]
            if (folder / MANIFEST).is_file():
                return folder
        elif self._scanned:
            raise NotFoundError(f"no order {receipt_id} in {self.orders_dir}", hint="run `kaalwatch sync`")
        self.refresh_index()  # moved or renamed by the artist, or never scanned by this process
        row = self._db().execute("SELECT folder FROM orders WHERE receipt_id = ?", (int(receipt_id),)).fetchone()
        if row:
            return self.orders_dir / row[0]
        raise NotFoundError(f"no order {receipt_id} in {self.orders_dir}", hint="run `kaalwatch sync`")

    def has_order(self, receipt_id: int) -> bool:
        try:
            self.folder_of(receipt_id)
        except NotFoundError:
            return False
        return True

    def load(self, receipt_id: int) -> Order:
        return self.read_folder(self.folder_of(receipt_id))

    def _write(self, folder: Path, order: Order) -> None:
        # The only place a manifest is written; callers are create() and edit().
        path = folder / MANIFEST
        try:
            atomic_write_text(path, dump_manifest(order), mode=0o600)
        except OSError as exc:
            raise _disk_error(exc, path) from None
        try:
            self._index_order(folder, order)
        except (WorkspaceError, sqlite3.Error) as exc:
            # The manifest (the truth) is written; raising now would make the caller retry a change that
            # happened. The stale row differs in mtime/size, so the next refresh_index re-reads it.
            log.warning("index not updated for order %s: %s", order.receipt_id, exc)

    def add_order(self, order: Order, *, actor: str = "sync") -> Path:
        """Create the folder, subfolders and manifest of a new order (under its lock)."""
        from kaalwatch.lifecycle import record

        with self.lock(order.receipt_id):
            if self.has_order(order.receipt_id):
                raise WorkspaceError(f"order {order.receipt_id} already exists")
            fields = {
                "receipt_id": order.receipt_id,
                "buyer": order.buyer_name,
                "listing": order.jobs[0].title if order.jobs else "order",
                "date": order.ordered_at.date().isoformat() if order.ordered_at else "",
            }
            name = naming.format_name(self.settings.folder_template, fields)
            folder: Path | None = None
            try:
                private.make_dir(self.orders_dir)
                folder = self._make_unique_dir(name)
                private.make_dir(folder / REFERENCES, exist_ok=False)
                if len(order.jobs) > 1:
                    used: set[str] = set()
                    for position, job in enumerate(order.jobs, start=1):
                        label = naming.safe_component(f"{position} {job.title}", max_bytes=80)
                        job_name = naming.unique_name(label, used)
                        used.add(job_name)
                        job.folder = job_name
                        private.make_dir(folder / job_name, exist_ok=False)
                        private.make_dir(folder / job_name / REFERENCES, exist_ok=False)
            except OSError as exc:
                _remove_empty_tree(folder)
                raise _disk_error(exc, self.orders_dir) from None
            event = record(order, actor, "order_created", None, jobs=[job.job_id for job in order.jobs])
            try:
                self._write(folder, order)
            except BaseException:
                # A creation that failed (disk full) leaves nothing behind: no folder without a manifest for
                # the artist to wonder about, no "(2)" twin on the retry, no event for what did not happen.
                if not (folder / MANIFEST).exists():
                    order.history.remove(event)
                    _remove_empty_tree(folder)
                raise
            return folder

    def _make_unique_dir(self, name: str) -> Path:
        """Create ``orders/name``, or ``name (2)``… — by trying, so it costs nothing per existing order and
        a case-insensitive filesystem's collisions count too."""
        taken: set[str] = set()
        while True:
            folder = self.orders_dir / naming.unique_name(name, taken)
            try:
                private.make_dir(folder, parents=False, exist_ok=False)
            except FileExistsError:
                taken.add(folder.name)
                continue
            return folder

    @contextlib.contextmanager
    def edit(self, receipt_id: int) -> Iterator[Order]:
        """Load the order fresh under its lock, let the caller change it through :mod:`lifecycle`, keep
        ``deliver/`` to the files of ready jobs (:mod:`kaalwatch.deliver_folder`), and write it back
        atomically — only if something changed, so an idle sync touches no file."""
        with self.lock(receipt_id):
            folder = self.folder_of(receipt_id)
            order = self.read_folder(folder)
            before = dump_manifest(order)
            yield order
            drop_stale(order, folder / DELIVER)
            if dump_manifest(order) != before:
                self._write(folder, order)

    def apply(self, receipt_id: int, change: Callable[[Order], Any]) -> Any:
        """``edit`` for one function: returns what ``change(order)`` returned."""
        with self.edit(receipt_id) as order:
            return change(order)

    # ----------------------------------------------------------------------------------- scanning

    def iter_order_folders(self) -> Iterator[Path]:
        """Every folder under ``orders/`` holding an ``order.yaml``, at any depth (artists make subfolders)."""
        stack = [self.orders_dir]
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            if any(e.name == MANIFEST and e.is_file(follow_symlinks=False) for e in entries):
                yield Path(folder)
                continue  # an order's own subfolders (jobs, references) hold no other order
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    stack.append(Path(entry.path))

    def iter_orders(self) -> Iterator[tuple[Path, Order | ManifestError]]:
        for folder in self.iter_order_folders():
            try:
                yield folder, self.read_folder(folder)
            except ManifestError as exc:
                yield folder, exc

    # -------------------------------------------------------------------------------------- index

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.tool_dir.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    # Anonymised buyer names must not linger in freed pages of the index.
                    conn.execute("PRAGMA secure_delete=ON")
                    if conn.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                        conn.executescript("DROP TABLE IF EXISTS orders; DROP TABLE IF EXISTS jobs; "
                                           "DROP TABLE IF EXISTS broken; DROP TABLE IF EXISTS search;")
                        conn.execute(f"PRAGMA user_version = {INDEX_VERSION}")
                    conn.executescript(_INDEX_SCHEMA)
                    private.restrict_sqlite(self.index_path)  # buyer names: private whatever the umask
                except BaseException:
                    conn.close()
                    raise
            except (OSError, sqlite3.Error) as exc:
                # On a full disk SQLite cannot create its WAL files and says only "disk I/O error":
                # name the file and the likely cause instead of an internal error.
                raise self._index_error(exc) from None
            self._local.conn = conn
        return conn

    def _index_error(self, exc: BaseException) -> WorkspaceError:
        try:
            full = shutil.disk_usage(self.tool_dir).free < 256 * 1024
        except OSError:
            full = False
        reason = "the disk is full" if full else str(exc)
        return WorkspaceError(f"cannot use the index {self.index_path}: {reason}",
                              hint="free some space or fix permissions; the index is rebuilt from the manifests")

    def scrub_index(self) -> None:
        """After retention: rebuild the index file without freed pages and empty its WAL, so an anonymised
        buyer's name survives neither in a free page nor in an old WAL frame. The search index keeps a
        deleted row's words in its older segments until they are merged: merge them all first."""
        db = self._db()
        db.execute("INSERT INTO search (search) VALUES ('optimize')")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _index_order(self, folder: Path, order: Order, stat: os.stat_result | None = None) -> None:
        stat = stat or (folder / MANIFEST).stat()
        rel = folder.relative_to(self.orders_dir).as_posix()
        ship_by = iso(order.ship_by)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM orders WHERE receipt_id = ? OR folder = ?", (order.receipt_id, rel))
            self._forget_jobs(db, order.receipt_id)
            db.execute("DELETE FROM broken WHERE folder = ?", (rel,))
            db.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?)",
                (order.receipt_id, rel, stat.st_mtime_ns, stat.st_size, order.buyer_name, iso(order.ordered_at),
                 ship_by, order.state.value, order.etsy_status, json.dumps(sorted(order.errors.items()))),
            )
            for position, job in enumerate(order.jobs, start=1):
                view = outlook(order, job)
                errors = sorted(job.errors.items()) + sorted(order.errors.items())
                cursor = db.execute(
                    "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (order.receipt_id, job.job_id, job.title, job.workflow, job.state.value,
                     int(job.state in ACTIVE_STATES), ship_by, order.buyer_name, len(job.versions),
                     job.latest.number if job.latest else None, job.latest.thumb if job.latest else None,
                     json.dumps(errors), view.group, iso(view.since), view.marker, len(order.jobs), position,
                     next((n for n, ref in enumerate(order.references) if ref.source == "buyer" and ref.thumb
                           and ref.status == "ok" and ref.job_id in (None, job.job_id)), None)),
                )
                db.execute("INSERT INTO search (rowid, text) VALUES (?, ?)", (cursor.lastrowid, job_text(order, job)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _forget_jobs(db: sqlite3.Connection, receipt_id: int) -> None:
        # The search rows share the jobs' rowids: deleting by rowid is an index lookup, not an FTS scan.
        db.execute("DELETE FROM search WHERE rowid IN (SELECT rowid FROM jobs WHERE receipt_id = ?)", (receipt_id,))
        db.execute("DELETE FROM jobs WHERE receipt_id = ?", (receipt_id,))

    def refresh_index(self) -> IndexReport:
        """Bring the index in line with the manifests on disk, parsing only those that changed.

        Costs one ``stat`` per order folder when nothing changed, so it runs at start-up and on every
        rescan; it also finds folders the artist renamed or moved.
        """
        db = self._db()
        rows = db.execute("SELECT folder, receipt_id, mtime_ns, size FROM orders")
        known = {row[0]: (row[1], row[2], row[3]) for row in rows}
        known_broken = {row[0]: row[1] for row in db.execute("SELECT folder, mtime_ns FROM broken")}
        seen: set[str] = set()
        parsed = 0
        broken: list[tuple[str, str]] = []
        scanned = 0
        for folder in self.iter_order_folders():
            scanned += 1
            rel = folder.relative_to(self.orders_dir).as_posix()
            seen.add(rel)
            try:
                stat = (folder / MANIFEST).stat()
            except OSError:
                continue
            entry = known.get(rel)
            if entry and entry[1] == stat.st_mtime_ns and entry[2] == stat.st_size:
                continue
            if rel in known_broken and known_broken[rel] == stat.st_mtime_ns:
                broken.append((rel, "unchanged since last report"))
                continue
            parsed += 1
            try:
                order = self.read_folder(folder)
            except ManifestError as exc:
                broken.append((rel, str(exc)))
                db.execute("INSERT OR REPLACE INTO broken VALUES (?,?,?)", (rel, stat.st_mtime_ns, str(exc)))
                continue
            self._index_order(folder, order, stat)
        gone = [rel for rel in known if rel not in seen]
        for rel in gone:
            receipt_id = known[rel][0]
            db.execute("DELETE FROM orders WHERE folder = ?", (rel,))
            if not db.execute("SELECT 1 FROM orders WHERE receipt_id = ?", (receipt_id,)).fetchone():
                self._forget_jobs(db, receipt_id)
        for rel in known_broken:
            if rel not in seen:
                db.execute("DELETE FROM broken WHERE folder = ?", (rel,))
        self._scanned = True
        return IndexReport(scanned=scanned, parsed=parsed, removed=len(gone), broken=broken)

    _JOB_COLUMNS = ("j.receipt_id, j.job_id, j.title, j.workflow, j.state, j.ship_by, j.buyer, j.versions, "
                    "j.latest_version, j.latest_thumb, j.errors, j.step, j.since, j.marker, j.items, j.position, "
                    "j.photo, o.folder")

    @staticmethod
    def _where(states: set[JobState] | None, active: bool | None, search: str,
               steps: set[str] | None = None) -> tuple[list[str], list[Any]] | None:
        """SQL conditions (fixed fragments with "?" placeholders) and their values; None: nothing can match."""
        where: list[str] = []
        args: list[Any] = []
        if states:
            where.append(f"j.state IN ({','.join('?' * len(states))})")
            args.extend(s.value for s in states)
        if active is not None:
            where.append("j.active = ?")
            args.append(int(active))
        if steps:
            where.append(f"j.step IN ({','.join('?' * len(steps))})")
            args.extend(sorted(steps))
        if search.strip():
            query = match_query(search)
            if query is None:
                return None
            where.append("j.rowid IN (SELECT rowid FROM search WHERE search MATCH ?)")
            args.append(query)
        return where, args

    def jobs(self, *, states: set[JobState] | None = None, active: bool | None = None, search: str = "",
             steps: set[str] | None = None, limit: int = 500, offset: int = 0) -> list[JobRow]:
        """Jobs from the index, soonest ship-by first (jobs without a date last), an order's items together.

        ``search`` finds jobs by receipt id, buyer, listing, personalization answers and notes, whatever
        their accents or case (see :mod:`kaalwatch.search`).
        """
        found = self._where(states, active, search, steps)
        if found is None:
            return []
        where, args = found
        # Only fixed fragments and "?" placeholders are joined here; values travel as parameters.
        sql = (
            f"SELECT {self._JOB_COLUMNS} FROM jobs j JOIN orders o USING (receipt_id)"  # noqa: S608
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY j.ship_by IS NULL, j.ship_by, j.receipt_id, j.position LIMIT ? OFFSET ?"
        )
        rows = self._db().execute(sql, (*args, limit, offset)).fetchall()
        return [
            JobRow(receipt_id=r[0], job_id=r[1], title=r[2], workflow=r[3], state=JobState(r[4]),
                   ship_by=parse_time(r[5]), buyer=r[6], versions=r[7], latest_version=r[8], latest_thumb=r[9],
                   errors=tuple((str(a), str(b)) for a, b in json.loads(r[10])), step=r[11],
                   since=parse_time(r[12]), marker=r[13], items=r[14], position=r[15], photo=r[16], folder=r[17])
            for r in rows
        ]

    def state_counts(self, search: str = "") -> dict[JobState, int]:
        """How many jobs are in each state (of those matching ``search``)."""
        counts = {state: 0 for state in JobState}
        found = self._where(None, None, search)
        if found is None:
            return counts
        where, args = found
        sql = "SELECT j.state, COUNT(*) FROM jobs j" + (  # noqa: S608 - fixed fragments and placeholders
" WHERE " + " AND ".join(where) if where else "")
        for state, count in self._db().execute(sql + " GROUP BY j.state", args):
            counts[JobState(state)] = count
        return counts

    def step_counts(self) -> dict[str, int]:
        """How many active jobs wait on each next step (the Today view's groups, before "overdue")."""
        return dict(self._db().execute("SELECT step, COUNT(*) FROM jobs WHERE active = 1 GROUP BY step").fetchall())

    def broken_manifests(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db().execute("SELECT folder, error FROM broken ORDER BY folder")]

    def receipt_ids(self) -> list[int]:
        return [r[0] for r in self._db().execute("SELECT receipt_id FROM orders ORDER BY receipt_id")]

    # ------------------------------------------------------------------------------- small state files

    def read_state(self, name: str) -> dict[str, Any]:
        """A small JSON document in ``.kaalwatch/state`` (sync high-water mark, daemon health…)."""
        path = self.state_dir / f"{naming.safe_component(name)}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, name: str, data: dict[str, Any]) -> None:
        path = self.state_dir / f"{naming.safe_component(name)}.json"
        try:
            atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str))
        except OSError as exc:
            raise _disk_error(exc, path) from None

    def write_tool_file(self, path: Path, data: bytes, mode: int | None = None) -> None:
        """Write a file in the tool area atomically, turning disk errors into one clear line."""
        try:
            atomic_write_bytes(path, data, mode)
        except OSError as exc:
            raise _disk_error(exc, path) from None
