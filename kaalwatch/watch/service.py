"""Run the watcher: watchdog events and periodic rescans feed a stability tracker; stable files are ingested.

Threads: the watchdog observer (its handler only puts a path on a queue, inside a catch-all, because an
exception in a handler kills the observer: watchdog issues #427 and #793); one coordinator thread that
owns the tracker, the rescan timer and the observer's health; a small pool of ingest threads (hash, copy,
wait for the preview from the ``PreviewPool`` processes, record). An in-flight set makes sure one path is
never ingested twice at the same time; a path that changes while in flight is armed again afterwards.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver

from kaalwatch.errors import KaalwatchError, WorkspaceError
from kaalwatch.fsprobe import filesystem_type, is_network
from kaalwatch.imaging import PreviewPool, PreviewSpec, RenderResult
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, REFERENCES, Workspace
from kaalwatch.watch.ignore import is_artwork_name
from kaalwatch.watch.ingest import Ingestor, Outcome, clean_staging
from kaalwatch.watch.locate import find_order_folder
from kaalwatch.watch.reconcile import Reconciler, RescanReport, ingest_when_stable, walk_candidates, walk_order_folders
from kaalwatch.watch.seen import SeenStore
from kaalwatch.watch.stability import Signature, StabilityTracker, quiet_for

log = logging.getLogger("kaalwatch.watch")

INOTIFY_HINT = ("raise the limit: `sudo sysctl fs.inotify.max_user_watches=524288` (and add "
                "`fs.inotify.max_user_watches=524288` to /etc/sysctl.d/90-kaalwatch.conf to keep it)")
HEALTH_SECONDS = 1.0
#: watchdog's event types for opening a file and closing it unwritten: reads, never saves.
READ_ONLY_EVENTS = frozenset({"opened", "closed_no_write"})

ObserverFactory = Callable[[str, float], BaseObserver]


def default_observer(backend: str, poll_interval: float) -> BaseObserver:
    if backend == "polling":
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=poll_interval)
    from watchdog.observers import Observer

    return Observer()


def choose_backend(setting: str, path: Path, fs_type: Callable[[Path], str | None] = filesystem_type) -> str:
    """native or polling: ``auto`` polls on network filesystems, where inotify sees no remote changes."""
    if setting in ("native", "polling"):
        return setting
    return "polling" if is_network(fs_type(path)) else "native"


class _Enqueue(FileSystemEventHandler):
    """The watchdog handler: hands paths to the coordinator and never raises."""

    def __init__(self, put: Callable[[Any], None]) -> None:
        self.put = put

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type in READ_ONLY_EVENTS:
            return  # a read changes nothing (and the watcher's own reads of a save would wake it again)
        try:
            self.put(os.fsdecode(event.src_path))
            if event.dest_path:  # moves and renames: the new name is a path of its own
                self.put(os.fsdecode(event.dest_path))
        except Exception:
            log.exception("watcher: could not queue an event; the next rescan will find the file")


class WatchService:
    """Watch ``orders/`` and turn every real save into exactly one version.

    Edge cases handled: an observer or emitter thread that died (restarted by ``ensure_alive``, then a
    rescan catches what was missed); inotify out of watches at start (ENOSPC/EMFILE: polling, with a log
    line saying how to raise the limit); network filesystems (polling under ``auto``); folders created,
    renamed, moved or deleted and recreated (a folder event re-scans that folder); a file changing while
    it is being copied (armed again); stop while previews are rendering (they finish first).
    """

    def __init__(self, ws: Workspace, settings: Settings, pool: PreviewPool | None = None, *,
                 observer_factory: ObserverFactory = default_observer,
                 fs_type: Callable[[Path], str | None] = filesystem_type) -> None:
        self.ws = ws
        self.settings = settings
        self.watcher = settings.watcher
        self._pool = pool
        self._own_pool = pool is None
        self._observer_factory = observer_factory
        self._fs_type = fs_type
        self._queue: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: set[Path] = set()
        self._rearm: set[Path] = set()
        self._flight_lock = threading.Lock()
        self.backend = "none"
        self.last_error: str | None = None
        self.restarts = 0
        self.seen = SeenStore(ws.tool_dir / "watch.sqlite")
        self.tracker = StabilityTracker(self.watcher.quiet_seconds, quiet_for=quiet_for(settings))
        self.ingestor = Ingestor(ws, settings, self._render, self.seen)
        self.reconciler = Reconciler(ws, settings, self.ingestor, self.seen)

    # ---------------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Start watching; the start-up rescan runs at once on the coordinator thread."""
        self.ws.orders_dir.mkdir(parents=True, exist_ok=True)
        if self._pool is None:
            self._pool = PreviewPool(self.watcher.workers or None)
        # Each ingest thread mostly waits for its preview; twice the pool keeps every worker busy.
        self._executor = ThreadPoolExecutor(max_workers=max(2, 2 * self._pool.workers),
                                            thread_name_prefix="kaalwatch-ingest")
        clean_staging(self.ws)
        self._start_observer(choose_backend(self.watcher.backend, self.ws.orders_dir, self._fs_type))
        self._next_rescan = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kaalwatch-watcher")
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        """Stop watching. Ingests (and their previews) already running finish; queued ones are dropped."""
        self._stop.set()
        self._queue.put(None)
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            self._halt(observer, timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.seen.close()

    def __enter__(self) -> WatchService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def health(self) -> dict[str, Any]:
        observer = self._observer
        alive = bool(observer is not None and observer.is_alive() and all(e.is_alive() for e in observer.emitters)
                     and self._thread is not None and self._thread.is_alive())
        with self._flight_lock:
            busy = len(self._in_flight)
        return {"alive": alive, "backend": self.backend, "queue_length": self._queue.qsize() + len(self.tracker) + busy,
                "last_error": self.last_error, "restarts": self.restarts, "ingests": self.ingestor.ingests}

    # ------------------------------------------------------------------------------------ observer

    def _start_observer(self, backend: str) -> None:
        with self._lock:
            observer = self._observer_factory(backend, self.watcher.poll_interval_seconds)
            observer.schedule(_Enqueue(lambda item: self._queue.put(item)), str(self.ws.orders_dir), recursive=True)
            try:
                observer.start()
            except OSError as exc:
                if backend != "native" or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise WorkspaceError(f"cannot watch {self.ws.orders_dir}: {exc.strerror or exc}") from None
                if self.watcher.backend == "native":
                    raise WorkspaceError("the system ran out of inotify watches",
                                         hint=f"{INOTIFY_HINT}, or set watcher.backend: polling") from None
                log.warning("watcher: the system ran out of inotify watches (%s); polling every %.1f s instead; %s",
                            errno.errorcode.get(exc.errno or 0, "?"), self.watcher.poll_interval_seconds, INOTIFY_HINT)
                self.last_error = "inotify watches exhausted: polling instead"
                self._start_observer("polling")
                return
            self._observer = observer
            self.backend = backend
            log.info("watcher: watching %s (%s)", self.ws.orders_dir, backend)

    @staticmethod
    def _halt(observer: BaseObserver, timeout: float) -> None:
        try:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout)
        except Exception:
            log.exception("watcher: stopping the old observer failed")

    def ensure_alive(self) -> bool:
        """Restart the coordinator thread or the observer (or one of its emitters) if it died.

        True when something was restarted; a rescan is then queued, since events were lost meanwhile.
        """
        with self._lock:
            if self._stop.is_set() or self._thread is None:
                return False  # stopped, or never started
            restarted = False
            if not self._thread.is_alive():
                log.warning("watcher: its coordinator thread stopped; restarting it and rescanning")
                self.last_error = "coordinator restarted"
                self.restarts += 1
                self._thread = threading.Thread(target=self._run, name="kaalwatch-watcher")
                self._thread.start()
                restarted = True
            observer = self._observer
            if observer is None or not observer.is_alive() or not observer.emitters \
                    or not all(e.is_alive() for e in observer.emitters):
                log.warning("watcher: the %s observer stopped; restarting it and rescanning", self.backend)
                self.last_error = "observer restarted"
                self.restarts += 1
                if observer is not None:
                    self._halt(observer, 2)
                self._observer = None
                self._start_observer(choose_backend(self.watcher.backend, self.ws.orders_dir, self._fs_type))
                restarted = True
        if restarted:
            self._queue.put(("rescan", None, None))
        return restarted

    # --------------------------------------------------------------------------------- coordinator

    def _run(self) -> None:
        next_health = time.monotonic() + HEALTH_SECONDS
        while not self._stop.is_set():
            now = time.monotonic()
            deadline = min(next_health, self._next_rescan)
            upcoming = self.tracker.next_deadline()
            if upcoming is not None:
                deadline = min(deadline, upcoming)
            try:
                item = self._queue.get(timeout=max(0.0, min(1.0, deadline - now)))
                self._handle(item)
                while True:
                    self._handle(self._queue.get_nowait())
            except queue.Empty:
                pass
            except Exception as exc:
                self._record(f"watcher: {exc.__class__.__name__}: {exc}")
            if self._stop.is_set():
                break
            now = time.monotonic()
            try:
                if now >= self._next_rescan:
                    self._next_rescan = now + self.watcher.rescan_minutes * 60
                    self._rescan_into_tracker(None)
                if now >= next_health:
                    next_health = now + HEALTH_SECONDS
                    self.ensure_alive()
                for path, signature in self.tracker.due_signed(time.monotonic()):
                    self._dispatch(path, signature)
            except Exception as exc:
                self._record(f"watcher: {exc.__class__.__name__}: {exc}")

    def _record(self, message: str) -> None:
        self.last_error = message
        log.exception(message)

    def _handle(self, item: Any) -> None:
        if item is None:
            return
        if isinstance(item, tuple):
            kind = item[0]
            if kind == "done":
                self._finished(item[1], item[2])
            elif kind == "rescan":
                self._rescan_into_tracker(item[1])
            return
        self._on_path(Path(item))

    def _on_path(self, path: Path) -> None:
        orders = self.ws.orders_dir
        if path == orders or orders not in path.parents:
            return
        try:
            st = os.lstat(path)
        except OSError:
            return  # deleted or moved away: versions already taken stay; a pending entry drops itself
        if os.path.isdir(path) and not os.path.islink(path):
            # A folder appeared, was renamed or moved: its files may have produced no events of their own.
            self._touch_folder(path)
            return
        if self.ingestor.rules.ignores(path.name) or st.st_size == 0:
            return
        if not (is_artwork_name(path.name) or path.parent.name == REFERENCES):
            return  # order.yaml (our own writes), notes, anything that can never become a version
        self._touch(path, time.monotonic())

    def _touch_folder(self, folder: Path) -> None:
        """A folder event is only a hint: every create, rename or close in a folder (the artist's save and
        kaalwatch's own ``order.yaml`` write alike) also modifies the folder. Its order folder's listing is
        compared with the seen-store, and only files whose size or mtime differ from what was judged are
        armed (quiet counted from each file's own last change; never shortening a running clock)."""
        now = time.monotonic()
        order_folder = folder if (folder / MANIFEST).is_file() else find_order_folder(folder, self.ws.orders_dir)
        if order_folder is None:
            # A folder holding order folders (moved in whole, say): each one is compared on its own.
            for sub in walk_order_folders(folder):
                self._touch_folder(sub)
            return
        judged = self._judged_files(order_folder)
        for rel, size, mtime in walk_candidates(order_folder, self.ingestor.rules):
            if judged.get(rel) != (size, mtime):
                self._touch(order_folder / rel, now, scanned=True)

    def _judged_files(self, order_folder: Path) -> dict[str, tuple[int, int]]:
        """What the seen-store knows of an order folder's files (by its folder row; else by its manifest)."""
        rel = order_folder.relative_to(self.ws.orders_dir).as_posix()
        known = self.seen.folder(rel)
        if known is not None:
            return self.seen.files_of(known.receipt_id)
        try:
            return self.seen.files_of(self.ws.read_folder(order_folder).receipt_id)
        except KaalwatchError:
            return {}  # a broken manifest: every file is armed, and ingest reports the manifest

    def _touch(self, path: Path, now: float, *, scanned: bool = False) -> None:
        with self._flight_lock:
            if path in self._in_flight:
                if not scanned:  # a scan or folder hint about a file being ingested is that ingest's own echo
                    self._rearm.add(path)
                return
        self.tracker.touch(path, now, scanned=scanned)
        if self._pool is not None and path.parent.name != REFERENCES:
            # Artwork is rendered in the pool (references in this process): its workers start during
            # the quiet period instead of inside the first renders.
            self._pool.warm()

    def _dispatch(self, path: Path, signature: Signature) -> None:
        with self._flight_lock:
            if path in self._in_flight:
                self._rearm.add(path)
                return
            self._in_flight.add(path)
        assert self._executor is not None
        try:
            self._executor.submit(self._ingest_one, path, signature)
        except RuntimeError:  # shutting down
            with self._flight_lock:
                self._in_flight.discard(path)

    def _ingest_one(self, path: Path, signature: Signature) -> None:
        outcome: Outcome | None = None
        try:
            outcome = self.ingestor.ingest(path, signature)
        except Exception as exc:
            self._record(f"watcher: {path.name}: {exc.__class__.__name__}: {exc}")
        finally:
            self._queue.put(("done", path, outcome))

    def _finished(self, path: Path, outcome: Outcome | None) -> None:
        with self._flight_lock:
            self._in_flight.discard(path)
            again = path in self._rearm
            self._rearm.discard(path)
        if again or (outcome is not None and outcome.action == "changed"):
            self.tracker.touch(path, time.monotonic())

    def _rerender_async(self, receipt_id: int, job_id: str, number: int) -> None:
        key = Path(f"//preview/{receipt_id}/{job_id}/{number}")
        with self._flight_lock:
            if key in self._in_flight:
                return
            self._in_flight.add(key)
        assert self._executor is not None

        def work() -> None:
            try:
                self.ingestor.render_version(receipt_id, job_id, number)
            except Exception as exc:
                self._record(f"watcher: preview of order {receipt_id}: {exc.__class__.__name__}: {exc}")
            finally:
                self._queue.put(("done", key, None))

        self._executor.submit(work)

    def _rescan_into_tracker(self, receipt_id: int | None) -> RescanReport:
        now = time.monotonic()

        def deliver(path: Path, _mtime_ns: int) -> None:
            self._touch(path, now, scanned=True)

        folders = None if receipt_id is None else [self.ws.folder_of(receipt_id)]
        report = self.reconciler.scan(folders, deliver, self._rerender_async)
        log.info("watcher: rescan: %s", report.summary())
        return report

    # -------------------------------------------------------------------------------------- render

    def _render(self, src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        pool = self._pool
        if pool is None:
            raise KaalwatchError("the watcher is stopped")
        future: Future[RenderResult] = pool.submit(src, preview, thumb, spec, text)
        return future.result()

    # ------------------------------------------------------------------------------------- on demand

    def rescan(self, receipt_id: int | None = None) -> RescanReport:
        """Scan now (one order, or all) and ingest what changed in the caller's thread; returns when done."""
        found: list[tuple[Path, int]] = []
        folders = None if receipt_id is None else [self.ws.folder_of(receipt_id)]
        report = self.reconciler.scan(folders, lambda p, m: found.append((p, m)),
                                      self.ingestor.render_version,
                                      force=receipt_id is not None)

        def busy(path: Path) -> bool:
            with self._flight_lock:
                return path in self._in_flight

        ingest_when_stable(self.ingestor, found, self.settings, report, in_flight=busy)
        return report
