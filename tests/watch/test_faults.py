"""Faults: dead observers, a raising handler, inotify out of watches, polling, folders moved under us."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver

from kaalwatch.model import Order
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from kaalwatch.watch.service import choose_backend, default_observer
from tests.support.polling import wait_for
from tests.watch.helpers import png

Start = Callable[..., WatchService]


def count(ws: Workspace, order: Order, job: int = 0) -> int:
    return len(ws.load(order.receipt_id).jobs[job].versions)


def test_handler_that_raises_does_not_kill_the_observer(ws: Workspace, order_at: Callable, start_service: Start,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    real_put = service._queue.put
    raised: list[str] = []

    def flaky_put(item: object, *args: object, **kwargs: object) -> None:
        if isinstance(item, str) and item.endswith("first.png") and not raised:
            raised.append(item)
            raise RuntimeError("injected handler failure")
        real_put(item, *args, **kwargs)

    monkeypatch.setattr(service._queue, "put", flaky_put)
    (folder / "first.png").write_bytes(png(1))
    wait_for(lambda: raised)
    (folder / "second.png").write_bytes(png(2))
    wait_for(lambda: count(ws, order) >= 1)
    assert service.health()["alive"] and service.restarts == 0


def test_killed_observer_is_restarted_and_saves_still_become_versions(ws: Workspace, order_at: Callable,
                                                                       start_service: Start) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    observer = service._observer
    assert observer is not None
    observer.stop()  # the observer thread dies (as after an exception in a handler)
    observer.join(5)
    (folder / "while-dead.png").write_bytes(png(3))  # saved while nothing was watching
    wait_for(lambda: service.restarts >= 1 and service.health()["alive"])
    wait_for(lambda: count(ws, order) == 1)  # found by the rescan after the restart
    (folder / "after.png").write_bytes(png(4))
    wait_for(lambda: count(ws, order) == 2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death we simulate
def test_dead_coordinator_thread_is_restarted_and_saves_still_become_versions(
        ws: Workspace, order_at: Callable, start_service: Start) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    real_handle = service._handle

    def die(item: object) -> None:
        service._handle = real_handle  # type: ignore[method-assign]
        raise SystemExit("simulated death of the watcher's own thread")  # escapes its catch-all

    service._handle = die  # type: ignore[method-assign]
    service._queue.put(("rescan", None, None))
    wait_for(lambda: not service.health()["alive"])
    (folder / "while-dead.png").write_bytes(png(6))
    assert service.ensure_alive() is True  # what the daemon's tick calls
    wait_for(lambda: service.health()["alive"])
    wait_for(lambda: count(ws, order) == 1)  # found by the rescan queued on restart
    (folder / "after.png").write_bytes(png(7))
    wait_for(lambda: count(ws, order) == 2)
    assert service.ensure_alive() is False


def test_dead_emitter_is_noticed_and_restarted(ws: Workspace, order_at: Callable, start_service: Start) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    observer = service._observer
    assert observer is not None
    emitter = next(iter(observer.emitters))
    emitter.stop()
    emitter.join(5)
    assert not service.health()["alive"]
    wait_for(lambda: service.restarts >= 1 and service.health()["alive"])
    (folder / "after.png").write_bytes(png(5))
    wait_for(lambda: count(ws, order) == 1)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_inotify_exhausted_falls_back_to_polling_with_the_fix_in_the_log(
        ws: Workspace, order_at: Callable, start_service: Start, caplog: pytest.LogCaptureFixture, code: int) -> None:
    order, folder = order_at()

    class Exhausted(BaseObserver):
        def __init__(self) -> None:
            real = default_observer("native", 1.0)
            self.__dict__.update(real.__dict__)
            self.__class__ = type("ExhaustedObserver", (type(real),), {"start": Exhausted.start})

        def start(self) -> None:
            raise OSError(code, os.strerror(code))

    backends: list[str] = []

    def factory(backend: str, interval: float) -> BaseObserver:
        backends.append(backend)
        return Exhausted() if backend == "native" else default_observer(backend, interval)

    with caplog.at_level(logging.WARNING, logger="kaalwatch.watch"):
        service = start_service(observer_factory=factory)
    assert backends == ["native", "polling"]
    assert service.health()["backend"] == "polling"
    assert "fs.inotify.max_user_watches" in caplog.text
    (folder / "polled.png").write_bytes(png(6))
    wait_for(lambda: count(ws, order) == 1)


def test_polling_backend(ws: Workspace, settings, order_at: Callable, start_service: Start) -> None:
    import dataclasses

    order, folder = order_at()
    polling = dataclasses.replace(settings, watcher=dataclasses.replace(settings.watcher, backend="polling"))
    service = start_service(polling)
    assert service.health()["backend"] == "polling"
    (folder / "polled.png").write_bytes(png(7))
    wait_for(lambda: count(ws, order) == 1)


def test_auto_polls_on_a_network_filesystem(tmp_path: Path) -> None:
    assert choose_backend("auto", tmp_path, lambda p: "nfs4") == "polling"
    assert choose_backend("auto", tmp_path, lambda p: "ext4") == "native"
    assert choose_backend("native", tmp_path, lambda p: "nfs4") == "native"


def test_order_folder_deleted_and_recreated(ws: Workspace, order_at: Callable, start_service: Start,
                                            tmp_path: Path) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    (folder / "one.png").write_bytes(png(8))
    wait_for(lambda: count(ws, order) == 1)
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)  # restored from a backup, then work goes on
    (folder / "two.png").write_bytes(png(9))
    wait_for(lambda: count(ws, order) == 2)


def test_order_folder_renamed_and_moved_while_saving(ws: Workspace, order_at: Callable, start_service: Start) -> None:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    (folder / "a.png").write_bytes(png(10))
    renamed = folder.with_name(folder.name + " (done soon)")
    os.rename(folder, renamed)  # renamed right after a save, before it became stable
    (renamed / "b.png").write_bytes(png(11))
    archive = ws.orders_dir / "2024" / "May"
    archive.mkdir(parents=True)
    moved = archive / renamed.name
    os.rename(renamed, moved)
    (moved / "c.png").write_bytes(png(12))
    wait_for(lambda: count(ws, order) == 3, timeout=15)
    assert sorted(v.source_name for v in ws.load(order.receipt_id).jobs[0].versions) == ["a.png", "b.png", "c.png"]


def test_stop_lets_a_running_preview_finish(ws: Workspace, order_at: Callable, settings, pool) -> None:
    order, folder = order_at()
    service = WatchService(ws, settings, pool)
    service.start()
    try:
        (folder / "big.png").write_bytes(png(13, (2400, 1800)))
        wait_for(lambda: service.health()["queue_length"] > 0 and len(service.tracker) == 0 and service._in_flight)
    finally:
        service.stop(timeout=10)
    v = ws.load(order.receipt_id).jobs[0].versions
    assert len(v) == 1 and v[0].preview and ws.tool_path(v[0].preview).is_file()
