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

import contextlib
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from kaalwatch.health import MAX_ERRORS, Backoff, Health, guard, one_line
from kaalwatch.instance import instance_lock
from kaalwatch.model import iso, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

if TYPE_CHECKING:  # the parts are imported when started, so `kaalwatch run --help` stays quick
    from apscheduler.schedulers.background import BackgroundScheduler

    from kaalwatch.imaging import PreviewPool
    from kaalwatch.notify import Notifier
    from kaalwatch.sync_job import SyncJob
    from kaalwatch.watch import WatchService
    from review_app.server import ReviewServer

log = logging.getLogger(__name__)

#: How often notifications look for news (a stat per order folder, a parse only of changed manifests).
NOTIFY_SECONDS = 10.0
#: How often the viewer's overview tiles of new saves are built ahead of the first look.
WARM_SECONDS = 5.0


class Daemon:
    """``kaalwatch run``: see the module docstring. ``run`` blocks until ``stop`` is set and returns 0.

    ``on_ready(review_url)`` is called once every part has been started (the demo prints it);
    ``tick_seconds`` and ``grace_seconds`` exist so tests and the demo can tighten the timings.
    """

    def __init__(self, settings: Settings, *, tick_seconds: float = 3.0, grace_seconds: float = 8.0,
                 on_ready: Callable[[str | None], None] | None = None) -> None:
        self.settings = settings
        self.tick_seconds = tick_seconds
        self.grace_seconds = grace_seconds
        self.on_ready = on_ready
        self.health = Health()
        self.ready = threading.Event()
        self.ws: Workspace | None = None
        self._stop = threading.Event()
        self._pool: PreviewPool | None = None
        self._watcher: WatchService | None = None
        self._server: ReviewServer | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._notifier: Notifier | None = None
        self._sync: SyncJob | None = None
        self._warmed: set[tuple[int, str, int]] = set()
        self._server_backoff = Backoff(max_skip=20)
        self._busy = 0
        self._busy_cond = threading.Condition()

    # ----------------------------------------------------------------------------------------- run

    def run(self, stop: threading.Event) -> int:
        self._stop = stop
        ws = Workspace(self.settings)
        ws.check()
        self.ws = ws
        with instance_lock(ws):
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

        from kaalwatch import retention
        from kaalwatch.sync_job import SyncJob

        s = self.settings
        self._sync = SyncJob(ws, s, self.health, on_new_downloads=self._downloads_now)
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
        scheduler.add_job(self._job("sync", self._sync.run), IntervalTrigger(minutes=s.sync.interval_minutes),
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
        catch_up = {"next_run_time": now} if retention.missed(ws) else {}
        scheduler.add_job(self._job("retention", self._retention), CronTrigger(hour=s.retention.run_hour),
                          id="retention", name="retention", **catch_up)
        # Issue 15: notifications (only when notify.urls are set) and the viewer's overview tiles of new saves.
        if s.notify.urls and self._guard("notify", self._start_notifier) and self._notifier is not None:
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

    def _downloads_now(self) -> None:
        if self._scheduler is not None:
            self._scheduler.modify_job("downloads", next_run_time=datetime.now().astimezone())

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

    # -------------------------------------------------------------------------------- guards, jobs

    def _guard(self, part: str, fn: Callable[[], object], *, mark_recovered: bool = True) -> bool:
        return guard(self.health, part, fn, mark_recovered=mark_recovered)

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

    def _job(self, part: str, fn: Callable[[], object]) -> Callable[[], None]:
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

    def watcher_health(self) -> dict[str, object]:
        if self._watcher is None:
            return {"alive": False, "backend": None, "queue_length": 0, "last_error": "watcher not started"}
        try:
            return dict(self._watcher.health())
        except Exception as exc:
            return {"alive": False, "backend": None, "queue_length": 0, "last_error": one_line(exc)}

    def health_document(self, *, running: bool = True) -> dict[str, object]:
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
            "queue_length": _count(watcher.get("queue_length")),
            "watcher_ingests": _count(watcher.get("ingests")),  # work done: grows with saves, not with time
            **snap,  # last sync and its result, pause, review URL, failing parts
            "errors": errors[-MAX_ERRORS:],
        }

    def _write_health(self, ws: Workspace, *, running: bool = True) -> None:
        try:
            ws.write_state("health", self.health_document(running=running))
        except Exception as exc:  # a full disk must not stop the heartbeat; the log still says it
            log.warning("health: %s", one_line(exc))

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
        watcher, pool = self._watcher, self._pool
        if watcher is not None:
            self._guard("watcher", lambda: watcher.stop(timeout=max(1.0, self.grace_seconds)))
        if self._server is not None:
            self._guard("review page", self._server.stop)
        if pool is not None:
            self._guard("previews", lambda: pool.shutdown(wait=True, cancel_pending=True))
        if self._notifier is not None:
            self._guard("notify", self._notifier.stop)
        if self._sync is not None:
            self._sync.close()
        self._write_health(ws, running=False)
        ws.close()
        log.info("kaalwatch run: shut down in %.1f s", time.monotonic() - started)

    @property
    def busy(self) -> int:
        """Jobs running right now (the CLI exits hard after ``run`` only when one outlived the grace period)."""
        with self._busy_cond:
            return self._busy


def _count(value: object) -> int:
    """A count from the watcher's health (absent while it is not running)."""
    return value if isinstance(value, int) else 0
