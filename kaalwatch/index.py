"""The index: ``.kaalwatch/index.sqlite``, a summary of every manifest for fast listing and search.

One row per order and per job, so the review page and ``status`` list 10,000 orders without parsing them;
an FTS5 table holds each job's searchable text. It can be deleted at any time: it is rebuilt from the
manifests, which stay the truth.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kaalwatch import private
from kaalwatch.errors import ManifestError, WorkspaceError
from kaalwatch.model import ACTIVE_STATES, JobState, Order, iso, parse_time
from kaalwatch.search import TOKENIZER, job_text, match_query
from kaalwatch.steps import outlook

# Bumped whenever the tables below change: an index of another version is dropped and rebuilt from the
# manifests (it is only a summary of them).
INDEX_VERSION = 4

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
    errors TEXT NOT NULL,
    buyer_user_id INTEGER,
    etsy_open INTEGER NOT NULL,
    addon_for INTEGER,
    addons TEXT NOT NULL
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

_JOB_COLUMNS = ("j.receipt_id, j.job_id, j.title, j.workflow, j.state, j.ship_by, j.buyer, j.versions, "
                "j.latest_version, j.latest_thumb, j.errors, j.step, j.since, j.marker, j.items, j.position, "
                "j.photo, o.folder")


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
class JoblessRow:
    """An order without an artwork job (a receipt of add-ons only, such as a Rush bought after the portrait)."""

    receipt_id: int
    buyer: str
    ordered_at: datetime | None
    addons: tuple[str, ...]  # their titles
    addon_for: int | None  # the buyer's order they were applied to (None: no open order was found)
    addon_for_job: str | None  # that order's first job (for a link), None when it has none indexed
    addon_for_state: JobState | None  # that order's state (delivered: time to complete this one too)
    folder: str


@dataclass(frozen=True)
class IndexReport:
    scanned: int
    parsed: int
    removed: int
    broken: list[tuple[str, str]]


class Index:
    """The index file of one workspace; one SQLite connection per thread, shared by processes (WAL)."""

    def __init__(self, path: Path, orders_dir: Path, manifest: str) -> None:
        self.path = path
        self.orders_dir = orders_dir
        self.manifest = manifest  # the manifest's file name inside an order folder
        self._local = threading.local()
        # After one full scan in this process, an order missing from the index is taken as absent: every
        # writer (this process or another) updates the shared index, so a miss needs no new scan. Without
        # this a first import of N orders would rescan orders/ N times.
        self.scanned = False
        # One refresh at a time in this process: two interleaved walks (the watcher's rescan and a page
        # looking for a moved order) could otherwise leave the row of the folder one of them saw first.
        self._refreshing = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
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
                    private.restrict_sqlite(self.path)  # buyer names: private whatever the umask
                except BaseException:
                    conn.close()
                    raise
            except (OSError, sqlite3.Error) as exc:
                # On a full disk SQLite cannot create its WAL files and says only "disk I/O error":
                # name the file and the likely cause instead of an internal error.
                raise unusable(self.path, exc, "free some space or fix permissions; the index is rebuilt from the "
                               "manifests", what="the index ") from None
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def scrub(self) -> None:
        """After retention: rebuild the index file without freed pages and empty its WAL, so an anonymised
        buyer's name survives neither in a free page nor in an old WAL frame. The search index keeps a
        deleted row's words in its older segments until they are merged: merge them all first."""
        db = self._db()
        db.execute("INSERT INTO search (search) VALUES ('optimize')")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def folder(self, receipt_id: int) -> str | None:
        """The order's folder relative to ``orders/`` as last indexed, or None."""
        row = self._db().execute("SELECT folder FROM orders WHERE receipt_id = ?", (int(receipt_id),)).fetchone()
        return str(row[0]) if row else None

    def record(self, folder: Path, order: Order, stat: os.stat_result | None = None) -> None:
        """Replace the order's rows with what ``order`` (just read from or written to ``folder``) says."""
        stat = stat or (folder / self.manifest).stat()
        rel = folder.relative_to(self.orders_dir).as_posix()
        ship_by = iso(order.ship_by)
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM orders WHERE receipt_id = ? OR folder = ?", (order.receipt_id, rel))
            _forget_jobs(db, order.receipt_id)
            db.execute("DELETE FROM broken WHERE folder = ?", (rel,))
            db.execute(
                "INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (order.receipt_id, rel, stat.st_mtime_ns, stat.st_size, order.buyer_name, iso(order.ordered_at),
                 ship_by, order.state.value, order.etsy_status, json.dumps(sorted(order.errors.items())),
                 order.buyer_user_id, int(not order.finished_on_etsy), order.addon_for,
                 json.dumps([addon.title for addon in order.addons])),
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

    def refresh(self, folders: Iterable[Path], read: Callable[[Path], Order]) -> IndexReport:
        """Bring the index in line with the manifests in ``folders``, reading (``read``) only those that
        changed: one ``stat`` per folder when nothing did. Finds folders the artist renamed or moved."""
        with self._refreshing:
            return self._refresh(folders, read)

    def _refresh(self, folders: Iterable[Path], read: Callable[[Path], Order]) -> IndexReport:
        db = self._db()
        rows = db.execute("SELECT folder, receipt_id, mtime_ns, size FROM orders")
        known = {row[0]: (row[1], row[2], row[3]) for row in rows}
        known_broken = {row[0]: row[1] for row in db.execute("SELECT folder, mtime_ns FROM broken")}
        seen: set[str] = set()
        parsed = 0
        broken: list[tuple[str, str]] = []
        scanned = 0
        for folder in folders:
            scanned += 1
            rel = folder.relative_to(self.orders_dir).as_posix()
            seen.add(rel)
            try:
                stat = (folder / self.manifest).stat()
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
                order = read(folder)
            except ManifestError as exc:
                broken.append((rel, str(exc)))
                db.execute("INSERT OR REPLACE INTO broken VALUES (?,?,?)", (rel, stat.st_mtime_ns, str(exc)))
                continue
            self.record(folder, order, stat)
        gone = [rel for rel in known if rel not in seen]
        for rel in gone:
            receipt_id = known[rel][0]
            db.execute("DELETE FROM orders WHERE folder = ?", (rel,))
            if not db.execute("SELECT 1 FROM orders WHERE receipt_id = ?", (receipt_id,)).fetchone():
                _forget_jobs(db, receipt_id)
        for rel in known_broken:
            if rel not in seen:
                db.execute("DELETE FROM broken WHERE folder = ?", (rel,))
        self.scanned = True
        return IndexReport(scanned=scanned, parsed=parsed, removed=len(gone), broken=broken)

    def jobs(self, *, states: set[JobState] | None = None, active: bool | None = None, search: str = "",
             steps: set[str] | None = None, limit: int = 500, offset: int = 0) -> list[JobRow]:
        """Jobs from the index, soonest ship-by first (jobs without a date last), an order's items together.

        ``search`` finds jobs by receipt id, buyer, listing, personalization answers and notes, whatever
        their accents or case (see :mod:`kaalwatch.search`).
        """
        found = _where(states, active, search, steps)
        if found is None:
            return []
        where, args = found
        # Only fixed fragments and "?" placeholders are joined here; values travel as parameters.
        sql = (
            f"SELECT {_JOB_COLUMNS} FROM jobs j JOIN orders o USING (receipt_id)"  # noqa: S608
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
        found = _where(None, None, search)
        if found is None:
            return counts
        where, args = found
        sql = "SELECT j.state, COUNT(*) FROM jobs j" + (  # noqa: S608 - fixed fragments and placeholders
" WHERE " + " AND ".join(where) if where else "")
        for state, count in self._db().execute(sql + " GROUP BY j.state", args):
            counts[JobState(state)] = count
        return counts

    def broken_manifests(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self._db().execute("SELECT folder, error FROM broken ORDER BY folder")]

    def jobless(self) -> list[JoblessRow]:
        """Orders Etsy still has open that hold no artwork job, oldest first: nothing lists them as jobs."""
        rows = self._db().execute(
            "SELECT receipt_id, buyer, ordered_at, addons, addon_for, folder, (SELECT job_id FROM jobs j"
            " WHERE j.receipt_id = o.addon_for ORDER BY position LIMIT 1), (SELECT state FROM orders t"
            " WHERE t.receipt_id = o.addon_for) FROM orders o WHERE etsy_open = 1"
            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.receipt_id = o.receipt_id)"
            " ORDER BY ordered_at IS NULL, ordered_at, receipt_id").fetchall()
        return [JoblessRow(receipt_id=r[0], buyer=r[1], ordered_at=parse_time(r[2]),
                           addons=tuple(str(t) for t in json.loads(r[3])), addon_for=r[4], addon_for_job=r[6],
                           addon_for_state=JobState(r[7]) if r[7] else None, folder=r[5])
                for r in rows]

    def open_orders_of(self, buyer_user_id: int, placed_by: datetime | None = None) -> list[int]:
        """The buyer's orders with an active job: those placed by ``placed_by`` first, each part newest first."""
        rows = self._db().execute(
            "SELECT receipt_id FROM orders o WHERE buyer_user_id = ? AND EXISTS (SELECT 1 FROM jobs j"
            " WHERE j.receipt_id = o.receipt_id AND j.active = 1)"
            " ORDER BY (ordered_at IS NOT NULL AND ordered_at <= ?) DESC, ordered_at DESC, receipt_id DESC",
            (int(buyer_user_id), iso(placed_by))).fetchall()
        return [int(r[0]) for r in rows]

    def receipt_ids(self) -> list[int]:
        return [r[0] for r in self._db().execute("SELECT receipt_id FROM orders ORDER BY receipt_id")]


def unusable(path: Path, exc: BaseException, hint: str, what: str = "") -> WorkspaceError:
    """A SQLite file of the tool area that cannot be opened or written. On a full disk SQLite cannot create
    its WAL files and says only "disk I/O error": name the file and the likely cause instead."""
    try:
        full = shutil.disk_usage(path.parent).free < 256 * 1024
    except OSError:
        full = False
    return WorkspaceError(f"cannot use {what}{path}: {'the disk is full' if full else exc}", hint=hint)


def _forget_jobs(db: sqlite3.Connection, receipt_id: int) -> None:
    # The search rows share the jobs' rowids: deleting by rowid is an index lookup, not an FTS scan.
    db.execute("DELETE FROM search WHERE rowid IN (SELECT rowid FROM jobs WHERE receipt_id = ?)", (receipt_id,))
    db.execute("DELETE FROM jobs WHERE receipt_id = ?", (receipt_id,))


def _where(states: set[JobState] | None, active: bool | None, search: str,
           steps: set[str] | None = None) -> tuple[list[str], list[object]] | None:
    """SQL conditions (fixed fragments with "?" placeholders) and their values; None: nothing can match."""
    where: list[str] = []
    args: list[object] = []
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
