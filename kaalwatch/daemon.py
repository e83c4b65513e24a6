"""The composition root of ``kaalwatch run``: one process assembling sync, watcher, previews and review page.

Everything is built in :meth:`Daemon.run`, in the order the parts depend on each other: workspace (and its
single-instance lock) → Etsy client (lazily, by the first sync) → preview pool → watcher → review page on
waitress's own threads → an APScheduler ``BackgroundScheduler`` with the periodic jobs (sync, rescan,
retention). The calling thread then keeps a heartbeat: every ``tick_seconds`` it revives a dead watcher,
retries a review page that could not bind, and writes ``state/health.json``.

One stop :class:`threading.Event` ends it all (the CLI sets it from SIGTERM and SIGINT): no new jobs start,
a running sync or manifest write gets ``grace_seconds`` to finish, the watcher lets its running preview
finish, the observer and the web server stop, and ``run`` returns 0. The process never forks itself:
systemd, launchd or the Task Scheduler supervise it.

Failure isolation: every part is started and every job is run inside a guard that logs the failure (by
receipt id or part name, never buyer text), adds a one-liner to the health file the page and ``status``
show, and retries with backoff. A failing part never stops the others.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from kaalwatch.errors import AuthError, WorkspaceError
from kaalwatch.model import iso, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

log = logging.getLogger(__name__)

LOCK_NAME = "daemon.lock"
PID_NAME = "daemon.pid"
MAX_ERRORS = 20
# Longest pause between sync attempts while Etsy keeps failing: long enough not to hammer an outage,
# short enough that orders appear within the hour after it ends.
MAX_SYNC_BACKOFF_SECONDS = 3600.0
#: How often notifications look for news (a stat per order folder, a parse only of changed manifests).
NOTIFY_SECONDS = 10.0
#: How often the viewer's overview tiles of new saves are built ahead of the first look.
WARM_SECONDS = 5.0


# --------------------------------------------------------------------------------------------------
# Single instance


class InstanceLock:
    """The per-workspace ``daemon.lock``; the holder's pid is written beside it so a second ``run`` can name it.

    The lock is an OS file lock (``flock``/``LockFileEx``), so a killed daemon never leaves a stale lock:
    the kernel releases it with the process. The pid file is only a label and may be stale; it is read only
    when the lock is actually held by someone.
    """

    def __init__(self, ws: Workspace) -> None:
        self.lock_path = ws.tool_dir / LOCK_NAME
        self.pid_path = ws.tool_dir / PID_NAME
        self.root = ws.root
        self._lock = FileLock(str(self.lock_path), timeout=0)

    def holder(self) -> str:
        try:
            return self.pid_path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise WorkspaceError(
                f"kaalwatch is already running on {self.root} (pid {self.holder()})",
                hint="stop that process first, or use another workspace",
            ) from None
        try:
            self.pid_path.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError as exc:
            self._lock.release()
            raise WorkspaceError(f"cannot write {self.pid_path}: {exc.strerror}",
                                 hint="check the workspace's permissions") from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            if self.holder() == str(os.getpid()):
                self.pid_path.unlink()
        self._lock.release()

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------------------------------
# Backoff and health


@dataclass
class Backoff:
    """Skip scheduled runs exponentially after failures: 0, 1, 3, 7 … runs, capped at ``max_skip``.

    Counting runs rather than comparing clocks keeps it immune to the scheduler's jitter: the first retry
    is always the very next run.
    """

    max_skip: int
    failures: int = 0
    skip: int = 0

    @classmethod
    def for_interval(cls, interval_seconds: float, max_delay: float = MAX_SYNC_BACKOFF_SECONDS) -> Backoff:
        return cls(max_skip=max(0, int(max_delay // max(interval_seconds, 1e-3)) - 1))

    def should_run(self) -> bool:
        if self.skip > 0:
            self.skip -= 1
            return False
        return True

    def failed(self) -> int:
        """Record a failure; returns how many runs will be skipped before the next attempt."""
        self.failures += 1
        self.skip = min(2 ** (self.failures - 1) - 1, self.max_skip)
        return self.skip

    def succeeded(self) -> None:
        self.failures = 0
        self.skip = 0


@dataclass
class Health:
    """What the heartbeat writes to ``state/health.json``: shared by jobs, so every change takes the lock."""

    errors: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=MAX_ERRORS))
    last_sync: str | None = None
    last_sync_result: str | None = None
    sync_paused: str | None = None
    review_url: str | None = None
    _last_by_part: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, part: str, message: str) -> None:
        """Log a part's failure and remember it; the same message again from the same part is not repeated."""
        line = message.splitlines()[0] if message else "failed"
        with self._lock:
            if self._last_by_part.get(part) == line:
                return
            self._last_by_part[part] = line
            self.errors.append(f"{utcnow().strftime('%Y-%m-%d %H:%M:%S')} {part}: {line}")
        log.error("%s: %s", part, line)

    def recovered(self, part: str) -> None:
        with self._lock:
            if self._last_by_part.pop(part, None) is not None:
                log.info("%s: working again", part)

    def sync_done(self, result: str) -> None:
        with self._lock:
            self.last_sync = iso(utcnow())
            self.last_sync_result = result

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "last_sync": self.last_sync,
                "last_sync_result": self.last_sync_result,
                "sync_paused": self.sync_paused,
                "errors": list(self.errors),
                "failing": sorted(self._last_by_part),
                "review_url": self.review_url,
            }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text and text[0] else exc.__class__.__name__


# --------------------------------------------------------------------------------------------------
# The daemon


class Daemon:
    """``kaalwatch run``: see the module docstring. ``run`` blocks until ``stop`` is set and returns 0.

    ``on_ready(review_url)`` is called once every part has been started (the demo prints it);
    ``tick_seconds`` and ``grace_seconds`` exist so tests and the demo can tighten the timings;
    ``watcher_factory(ws, settings, pool)`` replaces :class:`~kaalwatch.watch.WatchService` in tests.
    """

    def __init__(self, settings: Settings, *, tick_seconds: float = 3.0, grace_seconds: float = 8.0,
                 on_ready: Callable[[str | None], None] | None = None,
                 watcher_factory: Callable[[Workspace, Settings, Any], Any] | None = None) -> None:
        self.settings = settings
        self.watcher_factory = watcher_factory
        self.tick_seconds = tick_seconds
        self.grace_seconds = grace_seconds
        self.on_ready = on_ready
        self.health = Health()
        self.ready = threading.Event()
        self.ws: Workspace | None = None
        self._stop = threading.Event()
        self._client: Any = None
        self._pool: Any = None
        self._watcher: Any = None
        self._server: Any = None
        self._scheduler: Any = None
        self._notifier: Any = None
        self._warmed: set[tuple[int, str, int]] = set()
        self._sync_backoff = Backoff.for_interval(settings.sync.interval_minutes * 60)
        self._server_backoff = Backoff(max_skip=20)
        self._auth_blocked_on: tuple[tuple[str, int], ...] | None = None
        self._busy = 0
        self._busy_cond = threading.Condition()

    # ----------------------------------------------------------------------------------------- run

    def run(self, stop: threading.Event) -> int:
        self._stop = stop
        ws = Workspace(self.settings)
        ws.check()
        self.ws = ws
        with InstanceLock(ws):
            log.info("kaalwatch run: pid %d, workspace %s", os.getpid(), ws.root)
            try:
                self._start(ws)
                if not stop.is_set():
                    self.ready.set()
                    self._write_health(ws)
                    if self.on_ready is not None:
                        self.on_ready(self.health.review_url)
                while not stop.wait(self.tick_seconds):
                    self._tick(ws)
            finally:
                self._shutdown(ws)
        log.info("kaalwatch run: stopped")
        return 0

    def _start(self, ws: Workspace) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        s = self.settings
        self._guard("previews", self._start_pool)
        self._guard("watcher", self._start_watcher)
        self._guard("review page", self._start_server)
        # The scheduler logs every job added and run at INFO; our jobs log what they did themselves.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        # watchdog's inotify emitter warns (with a multi-kilobyte repr of every watch) each time a folder
        # created by sync is watched twice; harmless, and it buried the demo's output.
        warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
        now = datetime.now().astimezone()
        scheduler = BackgroundScheduler(
            executors={"default": {"type": "threadpool", "max_workers": 4}},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        scheduler.add_job(self._job("sync", self._sync), IntervalTrigger(minutes=s.sync.interval_minutes),
                          id="sync", name="sync", next_run_time=now)
        # Buyer downloads run beside the sync, never inside it: a slow buyer server cannot delay an order.
        # Two runs may overlap (each leases its own orders): an order whose servers take every deadline
        # does not hold up the next order's files.
        scheduler.add_job(self._job("downloads", self._downloads),
                          IntervalTrigger(seconds=s.sync.download_interval_seconds), id="downloads",
                          name="downloads", next_run_time=now, max_instances=2)
        scheduler.add_job(self._job("rescan", self._rescan), IntervalTrigger(minutes=s.watcher.rescan_minutes),
                          id="rescan", name="rescan", next_run_time=now)
        # A machine that was off at run_hour runs the missed day's retention at start-up instead.
        from kaalwatch import retention

        catch_up = {"next_run_time": now} if retention.missed(ws) else {}
        scheduler.add_job(self._job("retention", self._retention), CronTrigger(hour=s.retention.run_hour),
                          id="retention", name="retention", **catch_up)
        # Issue 15: notifications (only when notify.urls are set) and the viewer's overview tiles of new saves.
        if s.notify.urls and self._guard("notify", self._start_notifier):
            scheduler.add_job(self._job("notify", self._notifier.scan), IntervalTrigger(seconds=NOTIFY_SECONDS),
                              id="notify", name="notify", next_run_time=now)
        scheduler.add_job(self._job("viewer", self._warm_viewer), IntervalTrigger(seconds=WARM_SECONDS),
                          id="viewer", name="viewer")
        scheduler.start()
        self._scheduler = scheduler

    # ------------------------------------------------------------------------------------ the parts

    def _start_pool(self) -> None:
        from kaalwatch.imaging import PreviewPool

        self._pool = PreviewPool(self.settings.watcher.workers or None)

    def _start_watcher(self) -> None:
        assert self.ws is not None
        if self._watcher is None:
            if self.watcher_factory is not None:
                self._watcher = self.watcher_factory(self.ws, self.settings, self._pool)
            else:
                from kaalwatch.watch import WatchService

                self._watcher = WatchService(self.ws, self.settings, pool=self._pool)
        self._watcher.start()

    def _check_watcher(self) -> None:
        """Revive a dead observer or watcher thread (the watcher restarts its own parts and rescans)."""
        assert self._watcher is not None
        if self._watcher.ensure_alive():
            self.health.error("watcher", "the watcher stopped working; it was restarted and is rescanning")

    def _start_notifier(self) -> None:
        from kaalwatch.notify import Notifier

        assert self.ws is not None
        self._notifier = Notifier(self.ws, self.settings.notify)

    def _warm_viewer(self) -> None:
        from review_app.views.tiles import warm_latest

        assert self.ws is not None
        warm_latest(self.ws, self.settings, self._warmed)

    def _start_server(self) -> None:
        from review_app import create_app
        from review_app.server import ReviewServer

        app = create_app(self.settings, workspace=self.ws)
        server = ReviewServer(app, self.settings.review.host, self.settings.review.port)
        server.start()
        self._server = server
        self.health.review_url = server.url

    def _client_for_sync(self) -> Any:
        from kaalwatch.etsy.client import EtsyClient

        assert self.ws is not None
        if self._client is None:
            self._client = EtsyClient.from_settings(self.settings, self.ws)
        return self._client

    def _secrets_signature(self) -> tuple[tuple[str, int], ...]:
        # `kaalwatch auth` rewrites the token file; any change there is the signal to try Etsy again.
        assert self.ws is not None
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.ws.secrets_dir.iterdir()))
        except OSError:
            return ()

    def _sync(self) -> None:
        assert self.ws is not None
        if self._auth_blocked_on is not None:
            if self._secrets_signature() == self._auth_blocked_on:
                return  # paused until the shop is connected again
            self._auth_blocked_on = None
            self.health.sync_paused = None
            self._close_client()
        if self._etsy_says_wait():
            return
        if not self._sync_backoff.should_run():
            return
        try:
            from kaalwatch import sync

            client = self._client_for_sync()
            report = sync.sync_once(self.ws, self.settings, client)
        except AuthError as exc:
            self._sync_paused(_one_line(exc))
            return
        except Exception as exc:
            self._sync_failed(_one_line(exc))
            return
        # sync_once applies what it could and reports an early stop instead of raising.
        if getattr(report, "needs_reauth", False):
            self._sync_paused(report.fatal or "not connected")
            return
        if getattr(report, "fatal", None):
            self._sync_failed(report.summary())
            return
        self._sync_backoff.succeeded()
        if report.queued_downloads and self._scheduler is not None:  # new references: fetch them now
            self._scheduler.modify_job("downloads", next_run_time=datetime.now().astimezone())
        self.health.sync_done(report.summary())
        self.health.recovered("sync")
        self._guard("shipping", lambda: self._ship(client))

    def _etsy_says_wait(self) -> bool:
        """Etsy's recorded "not before" (by any process): no request until it passes, and not a failure."""
        from kaalwatch.etsy.ratelimit import SYNC_STATE, describe_not_before

        assert self.ws is not None
        line = describe_not_before(self.ws.read_state(SYNC_STATE))
        if line is not None:
            self.health.sync_done(f"waiting: {line}")
        return line is not None

    def _sync_paused(self, reason: str) -> None:
        self._auth_blocked_on = self._secrets_signature()
        self._close_client()
        message = f"Etsy refused the connection ({reason}); syncing paused until you run `kaalwatch auth`"
        self.health.sync_paused = message
        self.health.sync_done(f"paused: {message}")
        self.health.error("sync", message)

    def _sync_failed(self, line: str) -> None:
        skipped = self._sync_backoff.failed()
        self._close_client()  # a fresh session next time; a broken keep-alive must not stick
        self.health.sync_done(f"failed: {line}")
        self.health.error("sync", f"{line} (next attempt in {skipped + 1} run(s))")

    def _ship(self, client: Any) -> None:
        from kaalwatch import delivery

        assert self.ws is not None
        for line in delivery.ship_confirmed_orders(self.ws, self.settings, client) or []:
            log.info("shipping: %s", line)

    def _downloads(self) -> None:
        from kaalwatch.download_queue import DownloadQueue

        assert self.ws is not None
        DownloadQueue(self.ws, self.settings).run(stop=self._stop)

    def _rescan(self) -> None:
        if self._watcher is None:
            return
        report = self._watcher.rescan()
        log.debug("rescan: %s", report)

    def _retention(self) -> None:
        from kaalwatch import retention

        assert self.ws is not None
        retention.scheduled_purge(self.ws, self.settings, now=utcnow())  # logs its summary, records the run

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # -------------------------------------------------------------------------------- guards, jobs

    def _guard(self, part: str, fn: Callable[[], Any], *, mark_recovered: bool = True) -> bool:
        """Run one part's step; a failure is logged and shown, never raised into the others."""
        try:
            fn()
        except Exception as exc:
            self.health.error(part, _one_line(exc))
            log.debug("%s failed", part, exc_info=True)
            return False
        if mark_recovered:
            self.health.recovered(part)
        return True

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        with self._busy_cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._busy_cond:
                self._busy -= 1
                self._busy_cond.notify_all()

    def _job(self, part: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def job() -> None:
            if self._stop.is_set():
                return  # stop new work: a run that fires during shutdown does nothing
            with self._working():
                # sync decides itself when it has recovered (a returned report can still be a failure)
                self._guard(part, fn, mark_recovered=part != "sync")

        job.__name__ = f"kaalwatch-{part}"
        return job

    # ---------------------------------------------------------------------------------- heartbeat

    def _tick(self, ws: Workspace) -> None:
        if self._pool is None:
            self._guard("previews", self._start_pool)
        if self._watcher is None:
            self._guard("watcher", self._start_watcher)
        else:
            self._guard("watcher", self._check_watcher, mark_recovered=False)
            if self.watcher_health().get("alive"):
                self.health.recovered("watcher")
        if (self._server is None and self._server_backoff.should_run()
                and not self._guard("review page", self._start_server)):
            self._server_backoff.failed()
        self._write_health(ws)

    def watcher_health(self) -> dict[str, Any]:
        if self._watcher is None:
            return {"alive": False, "backend": None, "queue_length": 0, "last_error": "watcher not started"}
        try:
            return dict(self._watcher.health())
        except Exception as exc:
            return {"alive": False, "backend": None, "queue_length": 0, "last_error": _one_line(exc)}

    def health_document(self, *, running: bool = True) -> dict[str, Any]:
        watcher = self.watcher_health()
        snap = self.health.snapshot()
        errors = list(snap["errors"])
        if watcher.get("last_error") and self._watcher is not None:
            errors.append(f"watcher: {watcher['last_error']}")
        return {
            "pid": os.getpid(),
            "running": running,
            "updated_at": iso(utcnow()),
            "watcher_alive": bool(watcher.get("alive")) and running,
            "watcher_backend": watcher.get("backend"),
            "queue_length": int(watcher.get("queue_length") or 0),
            "watcher_ingests": int(watcher.get("ingests") or 0),  # work done: grows with saves, not with time
            "last_sync": snap["last_sync"],
            "last_sync_result": snap["last_sync_result"],
            "sync_paused": snap["sync_paused"],
            "review_url": snap["review_url"],
            "failing": snap["failing"],
            "errors": errors[-MAX_ERRORS:],
        }

    def _write_health(self, ws: Workspace, *, running: bool = True) -> None:
        try:
            ws.write_state("health", self.health_document(running=running))
        except Exception as exc:  # a full disk must not stop the heartbeat; the log still says it
            log.warning("health: %s", _one_line(exc))

    # ----------------------------------------------------------------------------------- shutdown

    def _shutdown(self, ws: Workspace) -> None:
        started = time.monotonic()
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
        # Let a running sync, rescan or purge finish its manifest write, within the grace period.
        with self._busy_cond:
            if not self._busy_cond.wait_for(lambda: self._busy == 0, timeout=self.grace_seconds):
                log.warning("stopping while a job is still running; it will be finished by the next start")
        if self._watcher is not None:
            self._guard("watcher", lambda: self._watcher.stop(timeout=max(1.0, self.grace_seconds)))
        if self._server is not None:
            self._guard("review page", self._server.stop)
        if self._pool is not None:
            self._guard("previews", lambda: self._pool.shutdown(wait=True, cancel_pending=True))
        if self._notifier is not None:
            self._guard("notify", self._notifier.stop)
        self._close_client()
        self._write_health(ws, running=False)
        ws.close()
        log.info("kaalwatch run: shut down in %.1f s", time.monotonic() - started)

    @property
    def busy(self) -> int:
        """Jobs running right now (the CLI exits hard after ``run`` only when one outlived the grace period)."""
        with self._busy_cond:
            return self._busy


def lock_holder(ws_root: Path) -> str | None:
    """The pid of a daemon running on this workspace, if its pid file names a live process (for ``doctor``)."""
    path = ws_root / ".kaalwatch" / PID_NAME
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return str(pid)
