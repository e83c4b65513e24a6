"""Real files written the way art tools and sync clients write them, seen by a real watchdog observer."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch.model import Order, Version
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from tests.support.polling import wait_for
from tests.watch.conftest import QUIET
from tests.watch.helpers import ThreadPreviewPool, png, write_chunked, write_then_rename

Start = Callable[..., WatchService]


def versions(ws: Workspace, order: Order, job: int = 0) -> list[Version]:
    return ws.load(order.receipt_id).jobs[job].versions


def previewed(ws: Workspace, order: Order, count: int) -> Callable[[], bool]:
    def check() -> bool:
        vs = versions(ws, order)
        return len(vs) >= count and all(v.preview and ws.tool_path(v.preview).is_file() for v in vs)
    check.__name__ = f"{count} versions with previews"
    return check


def settle(service: WatchService, marker: Path, ws: Workspace, order: Order, expected: int) -> None:
    """Save a fresh marker file and wait for its version: every earlier event has been handled by then."""
    marker.write_bytes(png(900 + expected))
    wait_for(previewed(ws, order, expected))


@pytest.fixture
def running(ws: Workspace, order_at: Callable[..., tuple[Order, Path]], start_service: Start
            ) -> tuple[Order, Path, WatchService]:
    order, folder = order_at()
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    return order, folder, service


def test_chunked_write_becomes_one_version_only_when_complete(ws: Workspace, running: tuple) -> None:
    order, folder, _service = running
    data = png(1, (900, 700))
    write_chunked(folder / "portrait.png", data, chunks=8, pause=QUIET * 0.6)  # ~1.4 s of writing
    assert versions(ws, order) == []  # still inside the quiet period after the last chunk
    wait_for(previewed(ws, order, 1))
    (v,) = versions(ws, order)
    assert v.size == len(data) and v.source_name == "portrait.png"
    assert ws.tool_path(v.copy).read_bytes() == data  # the immutable copy holds the complete file
    assert (folder / "portrait.png").read_bytes() == data  # the artist's file is untouched


def test_temp_then_rename_like_photoshop(ws: Workspace, running: tuple) -> None:
    order, folder, _ = running
    write_then_rename(folder / "portrait.png", png(2), ".portrait.png.tmp4821")
    wait_for(previewed(ws, order, 1))
    write_then_rename(folder / "portrait.png", png(3), "portrait.png.tmp")
    wait_for(previewed(ws, order, 2))
    assert [v.source_name for v in versions(ws, order)] == ["portrait.png", "portrait.png"]


def test_delete_then_recreate_keeps_the_old_version(ws: Workspace, running: tuple) -> None:
    order, folder, _ = running
    (folder / "portrait.png").write_bytes(png(4))
    wait_for(previewed(ws, order, 1))
    (folder / "portrait.png").unlink()
    (folder / "portrait.png").write_bytes(png(5))
    wait_for(previewed(ws, order, 2))
    first = versions(ws, order)[0]
    assert ws.tool_path(first.copy).read_bytes() == png(4)


def test_touch_and_same_bytes_again_are_not_new_versions(ws: Workspace, running: tuple) -> None:
    order, folder, service = running
    (folder / "portrait.png").write_bytes(png(6))
    wait_for(previewed(ws, order, 1))
    manifest_mtime = (folder / "order.yaml").stat().st_mtime_ns
    os.utime(folder / "portrait.png")  # a touch: new mtime, same bytes
    (folder / "portrait.png").write_bytes(png(6))  # a sync client re-writing the same bytes
    (folder / "older copy.png").write_bytes(png(6))  # the same bytes saved under a new name
    wait_for(lambda: len(service.tracker) == 0 and service.health()["queue_length"] == 0)
    time.sleep(QUIET)  # nothing to poll for: the claim is that nothing happens
    assert len(versions(ws, order)) == 1
    assert (folder / "order.yaml").stat().st_mtime_ns == manifest_mtime  # not even rewritten
    settle(service, folder / "marker.png", ws, order, 2)
    assert [v.source_name for v in versions(ws, order)] == ["portrait.png", "marker.png"]


def test_syncthing_temp_then_rename(ws: Workspace, running: tuple) -> None:
    order, folder, _ = running
    write_then_rename(folder / "portrait.png", png(7), ".syncthing.portrait.png.tmp")
    wait_for(previewed(ws, order, 1))
    write_then_rename(folder / "portrait.png", png(8), "~syncthing~portrait.png.tmp")
    wait_for(previewed(ws, order, 2))
    assert all(".tmp" not in v.source_name for v in versions(ws, order))


def test_krita_backup_and_autosaves_are_ignored(ws: Workspace, running: tuple) -> None:
    from tests.watch.helpers import kra

    order, folder, service = running
    (folder / "portrait.kra~").write_bytes(kra(1))
    (folder / "portrait-autosave.kra").write_bytes(kra(2))
    (folder / ".krita-4242-autosave.kra").write_bytes(kra(3))
    (folder / "portrait.kra").write_bytes(kra(4))
    wait_for(previewed(ws, order, 1))
    settle(service, folder / "marker.png", ws, order, 2)
    assert [v.source_name for v in versions(ws, order)] == ["portrait.kra", "marker.png"]


def test_conflict_copy_is_versioned_and_flagged(ws: Workspace, running: tuple) -> None:
    order, folder, _ = running
    (folder / "portrait.png").write_bytes(png(9))
    wait_for(previewed(ws, order, 1))
    name = "portrait.sync-conflict-20240501-101500-ABCDEF7.png"
    (folder / name).write_bytes(png(10))
    wait_for(previewed(ws, order, 2))
    job = ws.load(order.receipt_id).jobs[0]
    assert job.versions[1].conflict is True and job.versions[0].conflict is False
    assert [(c.file, c.version) for c in job.conflicts] == [(name, 2)]
    assert any(e.event == "sync_conflict" for e in ws.load(order.receipt_id).history)


def test_truncated_png_is_an_error_then_a_good_save_becomes_the_version(ws: Workspace, running: tuple) -> None:
    order, folder, _ = running
    good = png(11, (600, 400))
    (folder / "portrait.png").write_bytes(good[: len(good) // 2])
    wait_for(lambda: ws.load(order.receipt_id).jobs[0].last_error)
    job = ws.load(order.receipt_id).jobs[0]
    assert job.versions == [] and "portrait.png" in job.last_error and "save" in job.last_error
    (folder / "portrait.png").write_bytes(good)
    wait_for(previewed(ws, order, 1))
    job = ws.load(order.receipt_id).jobs[0]
    assert job.last_error is None and len(job.versions) == 1


def test_decompression_bomb_is_refused_with_an_error(ws: Workspace, running: tuple) -> None:
    import struct
    import zlib

    order, folder, service = running
    # A PNG header claiming 30000 x 30000 pixels (900 Mpx) over a few bytes of data.
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))
    (folder / "bomb.png").write_bytes(bomb)
    wait_for(lambda: ws.load(order.receipt_id).jobs[0].last_error)
    assert "bomb.png" in ws.load(order.receipt_id).jobs[0].last_error
    assert versions(ws, order) == []
    assert service.health()["alive"]


def test_zero_byte_and_deleted_before_stable_files_make_nothing(ws: Workspace, running: tuple) -> None:
    order, folder, service = running
    (folder / "empty.png").write_bytes(b"")
    (folder / "gone.png").write_bytes(png(12))
    (folder / "gone.png").unlink()
    settle(service, folder / "marker.png", ws, order, 1)
    assert [v.source_name for v in versions(ws, order)] == ["marker.png"]
    assert ws.load(order.receipt_id).jobs[0].last_error is None


def test_psd_with_png_export_is_one_paired_version(ws: Workspace, running: tuple) -> None:
    from tests.watch.helpers import psd

    order, folder, service = running
    (folder / "portrait.psd").write_bytes(psd(13))
    (folder / "portrait.png").write_bytes(png(13))
    wait_for(previewed(ws, order, 1))
    settle(service, folder / "marker.png", ws, order, 2)
    first = versions(ws, order)[0]
    assert first.source_name == "portrait.png" and first.paired_with == "portrait.psd"
    # Later the artist saves the PSD alone (no fresh export): that save is a version of its own.
    time.sleep(0.01)
    psd_path = folder / "portrait.psd"
    psd_path.write_bytes(psd(14))
    later = (folder / "portrait.png").stat().st_mtime_ns + 10 * 60 * 10**9
    os.utime(psd_path, ns=(later, later))
    wait_for(previewed(ws, order, 3))
    assert versions(ws, order)[2].source_name == "portrait.psd" and versions(ws, order)[2].paired_with is None


def test_misplaced_file_in_a_multi_item_order_is_reported(ws: Workspace, order_at: Callable, start_service: Start
                                                          ) -> None:
    order, folder = order_at(jobs=2)
    service = start_service()
    wait_for(lambda: service.health()["alive"])
    (folder / "stray.png").write_bytes(png(15))
    job_folder = folder / ws.load(order.receipt_id).jobs[1].folder
    (job_folder / "second.png").write_bytes(png(16))
    wait_for(lambda: ws.load(order.receipt_id).last_error and ws.load(order.receipt_id).jobs[1].versions)
    loaded = ws.load(order.receipt_id)
    assert "stray.png" in loaded.last_error and "folder" in loaded.last_error
    assert loaded.jobs[0].versions == [] and loaded.jobs[1].versions[0].source_name == "second.png"
    # Moved into the first item's folder, it becomes that item's version and the warning goes by itself.
    (folder / "stray.png").rename(folder / loaded.jobs[0].folder / "stray.png")
    wait_for(lambda: ws.load(order.receipt_id).jobs[0].versions and not ws.load(order.receipt_id).errors)
    assert ws.load(order.receipt_id).jobs[0].versions[0].source_name == "stray.png"


def test_artwork_saves_warm_the_preview_pool_and_references_do_not(ws: Workspace, order_at: Callable,
                                                                   start_service: Start,
                                                                   pool: ThreadPreviewPool) -> None:
    order, folder = order_at()
    start_service()
    (folder / "references").mkdir(exist_ok=True)
    (folder / "references" / "dog.png").write_bytes(png(1))
    wait_for(lambda: [r.name for r in ws.load(order.receipt_id).references] == ["dog.png"])
    assert pool.warms == 0  # reference thumbnails are made in the watcher's process
    (folder / "portrait.png").write_bytes(png(2))
    wait_for(previewed(ws, order, 1))
    assert pool.warms >= 1
