"""Remember, in the tool area, which files were already judged, so restarts, rescans and folder events skip them.

``.kaalwatch/watch.sqlite`` holds:

- ``files``: one row per file the watcher judged in an order folder (artwork, references, misplaced or
  ignored files), keyed by receipt id and path relative to the order folder: its size and mtime when it
  was judged, and the verdict — the content hash, or a word that is never a hash (``unfinished``,
  ``unreadable``, ``judged``; see ``ingest``). A file whose size and mtime still match costs no work.
- ``folders``: one row per order folder (the manifest's stat, the settings the previews were checked
  against, the preview files), so a rescan of an unchanged folder costs one ``stat`` per entry and no
  reading, hashing or YAML parsing.

The file can be deleted at any time: everything is found again from the manifests (by content hash), only
slower once. Code that deletes files from order folders (retention) may call ``forget_order``/``forget_file``;
it does not have to: a row whose file is gone is never consulted.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from kaalwatch import private
from kaalwatch.index import unusable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    receipt_id INTEGER NOT NULL,
    rel TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (receipt_id, rel)
);
CREATE TABLE IF NOT EXISTS folders (
    folder TEXT PRIMARY KEY,
    receipt_id INTEGER NOT NULL,
    manifest_mtime_ns INTEGER NOT NULL,
    manifest_size INTEGER NOT NULL,
    settings_key TEXT NOT NULL,
    previews TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class SeenFile:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class SeenFolder:
    receipt_id: int
    manifest_mtime_ns: int
    manifest_size: int
    settings_key: str
    previews: tuple[tuple[str, int], ...]  # (folder of previews relative to the tool area, its mtime_ns)


def _previews(text: str) -> tuple[tuple[str, int], ...]:
    """Rows written before preview folders were stamped hold bare names: they never match, so the folder is
    checked once more and its row rewritten."""
    return tuple((str(p[0]), int(p[1])) if isinstance(p, list) and len(p) == 2 else (str(p), -2)
                 for p in json.loads(text))


class SeenStore:
    """The processed-files memory. Safe to share between threads (one SQLite connection per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                private.restrict_sqlite(self.path)  # file names carry buyers' names
            except (OSError, sqlite3.Error) as exc:
                hint = "free some space; this file is only a cache and can be deleted"
                raise unusable(self.path, exc, hint) from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def file(self, receipt_id: int, rel: str) -> SeenFile | None:
        row = self._db().execute(
            "SELECT size, mtime_ns, sha256 FROM files WHERE receipt_id = ? AND rel = ?", (receipt_id, rel)
        ).fetchone()
        return SeenFile(*row) if row else None

    def put_file(self, receipt_id: int, rel: str, size: int, mtime_ns: int, sha256: str) -> None:
        self._db().execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?)", (receipt_id, rel, size, mtime_ns, sha256))

    def put_files(self, rows: list[tuple[int, str, int, int, str]]) -> None:
        """Many ``put_file`` rows (receipt_id, rel, size, mtime_ns, verdict) in one transaction."""
        db = self._db()
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?)", rows)

    def all_files(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Every order's files as ``{receipt_id: {rel: (size, mtime_ns)}}`` (one query for a full rescan)."""
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for rid, rel, size, mtime_ns in self._db().execute("SELECT receipt_id, rel, size, mtime_ns FROM files"):
            out.setdefault(rid, {})[rel] = (size, mtime_ns)
        return out

    def files_of(self, receipt_id: int) -> dict[str, tuple[int, int]]:
        rows = self._db().execute("SELECT rel, size, mtime_ns FROM files WHERE receipt_id = ?", (receipt_id,))
        return {rel: (size, mtime_ns) for rel, size, mtime_ns in rows}

    def all_folders(self) -> dict[str, SeenFolder]:
        rows = self._db().execute("SELECT folder, receipt_id, manifest_mtime_ns, manifest_size, settings_key, previews "
                                  "FROM folders")
        return {r[0]: SeenFolder(r[1], r[2], r[3], r[4], _previews(r[5])) for r in rows}

    def folder(self, folder: str) -> SeenFolder | None:
        r = self._db().execute("SELECT receipt_id, manifest_mtime_ns, manifest_size, settings_key, previews "
                               "FROM folders WHERE folder = ?", (folder,)).fetchone()
        return SeenFolder(r[0], r[1], r[2], r[3], _previews(r[4])) if r else None

    def put_folder(self, folder: str, entry: SeenFolder) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO folders VALUES (?,?,?,?,?,?)",
            (folder, entry.receipt_id, entry.manifest_mtime_ns, entry.manifest_size, entry.settings_key,
             json.dumps(list(entry.previews))),
        )

    def forget_folder(self, folder: str) -> None:
        self._db().execute("DELETE FROM folders WHERE folder = ?", (folder,))

    def forget_file(self, receipt_id: int, rel: str) -> None:
        self._db().execute("DELETE FROM files WHERE receipt_id = ? AND rel = ?", (receipt_id, rel))

    def forget_order(self, receipt_id: int) -> int:
        """Retention: forget every path remembered for an order, leaving no trace of them in the file.

        The paths may be named after the buyer. Rows are deleted with ``secure_delete``, the file is rebuilt
        (``VACUUM``: earlier replaced rows leave copies in free pages) and the WAL is emptied. The watcher's
        next rescan of the order re-learns its current (redacted) paths from the files themselves.
        Returns how many paths were forgotten.
        """
        db = self._db()
        db.execute("PRAGMA secure_delete=ON")
        gone = db.execute("DELETE FROM files WHERE receipt_id = ?", (int(receipt_id),)).rowcount
        gone += db.execute("DELETE FROM folders WHERE receipt_id = ?", (int(receipt_id),)).rowcount
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone
