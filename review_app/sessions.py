"""Server-side sessions and the per-account login throttle, in one small SQLite file beside the password.

The cookie holds only a random id; what a session knows (logged in, CSRF token, flashed messages) lives in
``secrets/sessions.sqlite``. Deleting the row is enough to end a session, so logout, ``set-password`` and
the idle timeout revoke it at once: a cookie copied before any of them is worth nothing afterwards.

Why a table of our own rather than flask-session: flask-session stores through cachelib or SQLAlchemy (a
new dependency for a handful of rows), and has no "revoke every session" that another process
(``kaalwatch set-password``) can call. Why not ``index.sqlite``: the index holds buyer data, may be deleted
at any time and is rebuilt from manifests; sessions are secrets and belong in the 0700 secrets folder.

The same file holds the login throttle, because the check and the record must be one atomic step shared
by every thread and process serving the page: one ``BEGIN IMMEDIATE`` transaction does both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from kaalwatch.store import Workspace
from kaalwatch.vault import Secrets

ACCOUNT = "owner"  # the page has one password, so one account: guesses from every address count together
# last_seen is written at most this often per session: a page view must not always cost a disk write.
TOUCH_SECONDS = 30.0
# Visitors who never log in still get a row (the login form's CSRF token); never keep more than this.
MAX_ROWS = 2000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, created REAL NOT NULL, last_seen REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS throttle (
    account TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until REAL NOT NULL, last REAL NOT NULL);
"""


def _digest(sid: str) -> str:
    # Only a hash of the id is stored: a copy of the file does not hand out live cookies.
    return hashlib.sha256(sid.encode()).hexdigest()


class Database:
    """One connection per process, serialised by a lock (waitress serves on several threads)."""

    def __init__(self, vault: Secrets) -> None:
        path = vault.sessions_path
        vault.create_file(path)  # 0600 before SQLite opens it (its WAL and shm files take its mode)
        self.path = path
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locked) transaction: no other process can read-then-write in between."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# --------------------------------------------------------------------------------------------------
# Sessions


@dataclass(frozen=True)
class SessionLimits:
    idle_seconds: float
    max_age_seconds: float


class SessionStore:
    """Rows of sessions; ``clock`` is injectable so tests move time instead of sleeping."""

    def __init__(self, db: Database, limits: SessionLimits, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.limits = limits
        self.clock = clock

    def load(self, sid: str) -> dict[str, Any] | None:
        """The data of a live session, or None (unknown, revoked, idle too long or too old)."""
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT created, last_seen, data FROM sessions WHERE id_hash = ?",
                               (_digest(sid),)).fetchone()
            if row is None:
                return None
            created, last_seen, data = row
            if now - last_seen > self.limits.idle_seconds or now - created > self.limits.max_age_seconds:
                conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(sid),))
                return None
            if now - last_seen > TOUCH_SECONDS:
                conn.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", (now, _digest(sid)))
        loaded = json.loads(data)
        return loaded if isinstance(loaded, dict) else {}

    def create(self, data: dict[str, Any]) -> str:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        with self.db.transaction() as conn:
            self._prune(conn, now)
            conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (_digest(sid), now, now, json.dumps(data)))
        return sid

    def save(self, sid: str, data: dict[str, Any]) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE sessions SET data = ?, last_seen = ? WHERE id_hash = ?",
                         (json.dumps(data), self.clock(), _digest(sid)))

    def delete(self, sid: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(sid),))

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM sessions WHERE last_seen < ? OR created < ?",
                     (now - self.limits.idle_seconds, now - self.limits.max_age_seconds))
        conn.execute("DELETE FROM sessions WHERE id_hash NOT IN "
                     "(SELECT id_hash FROM sessions ORDER BY last_seen DESC LIMIT ?)", (MAX_ROWS - 1,))


def revoke_all(ws: Workspace) -> int:
    """End every session and lift the login lock (``set-password``, from any process); returns sessions ended."""
    with contextlib.closing(Database(ws.secrets)) as db, db.transaction() as conn:
        ended = conn.execute("DELETE FROM sessions").rowcount
        conn.execute("DELETE FROM throttle")
    return int(ended)


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The session dict; ``rotate()`` gives it a new id when saved (login and logout: no fixation, no replay)."""

    def __init__(self, data: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def changed(_: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(data or {}, changed)
        self.sid = sid
        self.modified = False
        self.rotated = False

    def rotate(self) -> None:
        self.rotated = True
        self.modified = True


class ServerSessionInterface(SessionInterface):
    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if sid and len(sid) < 100:
            data = self.store.load(sid)
            if data is not None:
                return ServerSession(data, sid)
        return ServerSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name, domain, path = self.get_cookie_name(app), self.get_cookie_domain(app), self.get_cookie_path(app)
        if session.sid is not None and (session.rotated or not session):
            self.store.delete(session.sid)
            session.sid = None
            if not session:
                response.delete_cookie(name, domain=domain, path=path)
                return
        if not session:
            return  # nothing worth a row: no cookie either
        if session.sid is not None:
            if session.modified:
                self.store.save(session.sid, dict(session))
            return
        session.sid = self.store.create(dict(session))
        response.vary.add("Cookie")
        response.set_cookie(name, session.sid, max_age=int(self.store.limits.max_age_seconds), domain=domain,
                            path=path, httponly=self.get_cookie_httponly(app), secure=self.get_cookie_secure(app),
                            samesite=self.get_cookie_samesite(app))


# --------------------------------------------------------------------------------------------------
# Login throttle


@dataclass
class LoginThrottle:
    """A few free guesses, then a lock that doubles with each further guess, up to ``max_seconds``.

    :meth:`admit` counts a guess *before* the password is checked, in the same transaction that checks the
    lock: 24 guesses sent at once are counted one by one, so no more than ``free`` are ever checked before
    the lock holds. A right password then clears the count (:meth:`success`). Refused guesses do not extend
    the lock, so the owner waits at most ``max_seconds``; ``kaalwatch set-password`` lifts it at once.
    """

    db: Database
    free: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 300.0
    forget_after: float = 3600.0
    clock: Callable[[], float] = time.time

    def admit(self, account: str = ACCOUNT) -> float:
        """0 when this guess may be checked (and is now counted), else the seconds until the lock ends."""
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT failures, locked_until, last FROM throttle WHERE account = ?",
                               (account,)).fetchone()
            failures, locked_until, last = row if row else (0, 0.0, now)
            if locked_until > now:
                return float(locked_until - now)
            if now - last > self.forget_after:
                failures = 0
            failures += 1
            if failures >= self.free:
                locked_until = now + min(self.max_seconds, self.base_seconds * 2 ** (failures - self.free))
            conn.execute("INSERT OR REPLACE INTO throttle VALUES (?, ?, ?, ?)",
                         (account, failures, locked_until, now))
        return 0.0

    def wait_seconds(self, account: str = ACCOUNT) -> float:
        with self.db.transaction() as conn:
            row = conn.execute("SELECT locked_until FROM throttle WHERE account = ?", (account,)).fetchone()
        return max(0.0, float(row[0]) - self.clock()) if row else 0.0

    def success(self, account: str = ACCOUNT) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM throttle WHERE account = ?", (account,))
