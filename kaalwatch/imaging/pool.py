"""Run preview rendering off the watcher's thread in a bounded pool of long-lived worker processes.

Why processes: decoding and resampling hold the GIL for long stretches in places, and a decoder crash or
an out-of-memory kill on a hostile file must not take the watcher down with it. Why long-lived: each
worker keeps its caches (font, watermark masks per output size, colour transforms) across files.
Why "spawn": the watcher process runs threads (watchdog observers), and forking a threaded process
can copy a held lock into the child.

Bounded: at most ``max_pending`` renders are queued or running; ``submit`` blocks the caller beyond that
(back-pressure on the watcher's work queue rather than an unbounded backlog of large decodes).
If a worker dies (killed by the OOM killer, a decoder segfault) its futures fail with
``BrokenProcessPool`` and the next ``submit`` starts a fresh pool.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from PIL import Image

from kaalwatch.imaging.preview import PreviewSpec, RenderResult, render_previews


def default_workers() -> int:
    """The cores this process may run on (affinity-aware where the OS tells us)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return max(1, os.cpu_count() or 1)


#: How often a worker checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 1.0


def _exit_when_orphaned(parent_pid: int) -> None:
    # A SIGKILLed daemon (OOM killer, kill -9) runs no clean-up: without this its idle workers would wait
    # on the call queue forever, and every crash-restart would leave two more behind.
    while os.getppid() == parent_pid:
        threading.Event().wait(PARENT_CHECK_SECONDS)
    os._exit(0)


#: glibc's M_MMAP_THRESHOLD (malloc.h), and the size from which a worker's allocations are mapped.
_M_MMAP_THRESHOLD = -3
MMAP_FROM_BYTES = 1 << 20


def _give_back_large_buffers() -> None:
    """Make glibc map every allocation of ``MMAP_FROM_BYTES`` or more, so image buffers go back to the
    system when freed. By default glibc raises that threshold to the size of the last large block freed
    (up to 32 MB): Pillow's 16 MB image blocks then come from the heap, which keeps what the largest
    artwork needed, and a long-lived worker stays at that size however small the next files are."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_FROM_BYTES)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to tune
        pass


#: Pillow's image memory in a worker: blocks of this size, up to ``KEPT_BLOCKS`` of them kept when freed.
IMAGE_BLOCK_BYTES = 2 << 20
KEPT_BLOCKS = 16


def _reuse_image_blocks() -> None:
    """Let Pillow keep up to ``KEPT_BLOCKS`` freed image blocks of ``IMAGE_BLOCK_BYTES`` for the next image.

    With every large buffer mapped afresh (``_give_back_large_buffers``), each render touched its images'
    pages anew: ~8,300 page faults, 10-12 ms of a 60-70 ms render of a phone JPEG (measured 2026-11-29 with
    ``getrusage`` minor faults, 7 renders each). Pillow's own block cache (what its ``PILLOW_BLOCK_SIZE``
    and ``PILLOW_BLOCKS_MAX`` variables set at import; a worker has imported Pillow before this runs)
    reuses warm blocks instead: ~600 faults and the render's time without the mapping. Blocks of one
    small size are what make reuse work: Pillow's default 16 MB blocks are cut to each image's size, so a
    freed one rarely fits the next image without a reallocation. What an idle worker keeps is bounded by
    the cache: 32 MB, what a phone photo's render uses; an image larger than it still maps the rest and
    gives it back when freed. A worker that has rendered every preview benchmark input rests at 130 MB
    against 108 MB without the cache; 32 blocks (64 MB) made it 159 MB for no faster JPEG render.
    """
    Image.core.set_block_size(IMAGE_BLOCK_BYTES)
    Image.core.set_blocks_max(KEPT_BLOCKS)


def _init_worker(parent_pid: int | None = None) -> None:
    """Prepare a worker once: our own pixel cap replaces Pillow's global one, HEIC opener registered, large
    buffers handed back when freed except a bounded cache of image blocks, and a watch that ends the worker
    when the process that started it dies."""
    _give_back_large_buffers()
    _reuse_image_blocks()
    if parent_pid is not None:
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="kaalwatch-parent-watch",
                         daemon=True).start()
    # decode() checks max_pixels on every header; Pillow's global limit would otherwise cap any
    # configured max_pixels above 179 Mpx in the worker.
    Image.MAX_IMAGE_PIXELS = None
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        pass


def render_threads(cores: int, in_flight: int) -> int:
    """Threads one render may use when ``in_flight`` renders (itself included) share ``cores``: a lone save
    on an idle machine resamples on two threads, a burst that keeps every worker busy on one each."""
    return max(1, cores // max(1, in_flight))


def _ready() -> None:
    """Nothing: submitted to make the pool start a worker (see ``PreviewPool.warm``)."""


def _render_job(src: str, preview_out: str, thumb_out: str, spec: PreviewSpec, text: str,
                threads: int) -> RenderResult:
    return render_previews(Path(src), Path(preview_out), Path(thumb_out), spec, text, threads=threads)


class PreviewPool:
    """A bounded pool of long-lived worker processes for ``render_previews``."""

    def __init__(self, workers: int | None = None, max_pending: int | None = None) -> None:
        self.workers = workers if workers and workers > 0 else default_workers()
        self.max_pending = max_pending if max_pending and max_pending > 0 else 2 * self.workers
        self._cores = default_workers()
        self._in_flight = 0  # renders submitted and not yet done (at most ``workers`` of them run)
        self._count_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_pending)
        self._lock = threading.Lock()
        self._closed = False
        self._executor = self._new_executor()
        self._warmed: ProcessPoolExecutor | None = None

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )

    def submit(self, src: Path, preview_out: Path, thumb_out: Path, spec: PreviewSpec,
               text: str) -> Future[RenderResult]:
        """Queue one render; blocks while ``max_pending`` renders are already in flight."""
        if self._closed:
            raise RuntimeError("PreviewPool is shut down")
        self._slots.acquire()
        try:
            with self._count_lock:
                self._in_flight += 1
                threads = render_threads(self._cores, min(self._in_flight, self.workers))
            job = functools.partial(_render_job, str(src), str(preview_out), str(thumb_out), spec, text, threads)
            with self._lock:
                try:
                    future = self._executor.submit(job)
                except BrokenProcessPool:
                    # A worker died earlier; its futures already carry the error. Start afresh.
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
                    future = self._executor.submit(job)
        except BaseException:
            self._done()
            raise
        future.add_done_callback(lambda _f: self._done())
        return future

    def _done(self) -> None:
        # Its own lock: cancelled futures call this inside ``submit`` while ``_lock`` is held.
        with self._count_lock:
            self._in_flight -= 1
        self._slots.release()

    def warm(self) -> None:
        """Start every worker now, without waiting for them; a no-op once this pool's workers started.

        Workers are otherwise spawned by the renders that first need them, and a spawn costs a few
        hundred milliseconds of CPU (an interpreter, Pillow) -- inside the first burst of saves, on the
        cores that burst needs. The watcher calls this when a save starts settling, so the workers
        start during the quiet period; an idle daemon that never sees a save keeps none.
        """
        with self._lock:
            if self._closed or self._warmed is self._executor:
                return
            self._warmed = self._executor
            # The executor spawns a process for each task submitted while none is idle.
            for _ in range(self.workers):
                self._executor.submit(_ready)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; running (and, unless ``cancel_pending``, queued) renders finish."""
        self._closed = True
        with self._lock:
            self._executor.shutdown(wait=wait, cancel_futures=cancel_pending)

    def __enter__(self) -> PreviewPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)
