"""Real tools' save sequences replayed as exact file-system operations against a running watcher with the
default watcher settings (2 s quiet, 10 s for closed formats): versions, conflict flags, approval and
deliver/ contents after each. Issue 21's cases; see README "What kaalwatch guarantees" → Watcher."""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kaalwatch import delivery, lifecycle
from kaalwatch.errors import DeliveryError, TransitionError
from kaalwatch.model import Job, JobState, Order
from kaalwatch.settings import Settings, WatcherSettings
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from tests.support.polling import wait_for
from tests.watch.helpers import kra, png, write_chunked, write_then_rename

Start = Callable[..., WatchService]
DEFAULTS = WatcherSettings()
#: Longest a default-settings save may take to become a version here (closed quiet + a loaded CI machine).
PATIENCE = DEFAULTS.closed_quiet_seconds + 20


@pytest.fixture
def shop(ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]], start_service: Start
         ) -> Iterator[tuple[Order, Path, WatchService]]:
    """One order folder and a watcher running with the default watcher settings."""
    order, folder = order_at()
    service = start_service(dataclasses.replace(settings, watcher=DEFAULTS))
    wait_for(lambda: service.health()["alive"])
    yield order, folder, service


def job(ws: Workspace, order: Order) -> Job:
    return ws.load(order.receipt_id).jobs[0]


def events(ws: Workspace, order: Order, name: str) -> list[dict[str, object]]:
    return [e.details for e in ws.load(order.receipt_id).history if e.event == name]


def version_count(ws: Workspace, order: Order, count: int) -> Callable[[], bool]:
    def check() -> bool:
        vs = job(ws, order).versions
        return len(vs) >= count and all(v.preview or v.note for v in vs)
    check.__name__ = f"{count} finished versions"
    return check


def settle(ws: Workspace, order: Order, folder: Path, count: int) -> None:
    """Save a marker and wait for it: every earlier event has been handled by then (FIFO coordinator)."""
    (folder / f"marker-{count}.png").write_bytes(png(700 + count))
    wait_for(version_count(ws, order, count), timeout=PATIENCE)


def approve_and_deliver(ws: Workspace, settings: Settings, order: Order, number: int) -> list[str]:
    with ws.edit(order.receipt_id) as o:
        lifecycle.approve(o, o.jobs[0].job_id, number)
    # anyway: the small test pictures are below the workflow's promised size (a warning, not the point here)
    delivery.prepare(ws, settings, order.receipt_id, anyway=True)
    return sorted(p.name for p in delivery.deliver_dir(ws, order.receipt_id).iterdir())


# ------------------------------------------------------------------------------------------ conflicts


@pytest.mark.parametrize("conflict_name", [
    "portrait (Ada's conflicted copy 2026-11-29).png",  # Dropbox
    "portrait.sync-conflict-20261129-101500-ABCDEF7.png",  # Syncthing
    "portrait (conflicted copy 2026-11-29 101500).png",  # Nextcloud / ownCloud
    "[Conflict] portrait.png",  # Google Drive
    "portrait 2.png",  # iCloud Drive (beside portrait.png)
])
def test_a_sync_conflict_of_a_known_save_is_flagged_and_blocks_approval_and_delivery(
        conflict_name: str, ws: Workspace, settings: Settings, shop: tuple) -> None:
    order, folder, _ = shop
    local, remote = png(1), png(2)
    (folder / "portrait.png").write_bytes(local)
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    # The sync client renames the local save to its conflict name and puts the other device's file in place.
    os.rename(folder / "portrait.png", folder / conflict_name)
    write_then_rename(folder / "portrait.png", remote, ".portrait.png.sync-tmp")
    wait_for(lambda: [c.file for c in job(ws, order).conflicts] == [conflict_name], timeout=PATIENCE)
    wait_for(version_count(ws, order, 2), timeout=PATIENCE)
    current = job(ws, order)
    assert [v.size for v in current.versions] == [len(local), len(remote)]  # the conflict copy is no new version
    assert (current.conflicts[0].version, current.conflicts[0].original) == (1, "portrait.png")
    flagged = events(ws, order, "sync_conflict")
    assert flagged[-1]["version"] == 1 and flagged[-1]["original"] == "portrait.png"
    with ws.edit(order.receipt_id) as o, pytest.raises(TransitionError, match="unresolved sync conflict"):
        lifecycle.approve(o, o.jobs[0].job_id, 2)
    with ws.edit(order.receipt_id) as o:
        lifecycle.resolve_conflict(o, o.jobs[0].job_id, conflict_name, 2)
    assert approve_and_deliver(ws, settings, order, 2)  # resolved: approval and delivery work
    assert events(ws, order, "conflict_resolved")[-1]["current"] == 2


def test_a_conflict_arriving_after_approval_stops_delivery(ws: Workspace, settings: Settings, shop: tuple) -> None:
    order, folder, _ = shop
    (folder / "portrait.png").write_bytes(png(3))
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    with ws.edit(order.receipt_id) as o:
        lifecycle.approve(o, o.jobs[0].job_id, 1)
    shutil.copyfile(folder / "portrait.png", folder / "portrait.sync-conflict-20261129-101500-ABCDEF7.png")
    wait_for(lambda: job(ws, order).conflicts, timeout=PATIENCE)
    with pytest.raises(DeliveryError, match="unresolved sync conflict"):
        delivery.prepare(ws, settings, order.receipt_id)
    assert not delivery.deliver_dir(ws, order.receipt_id).exists() or \
        not any(delivery.deliver_dir(ws, order.receipt_id).iterdir())


def test_a_numbered_name_alone_is_not_a_conflict(ws: Workspace, shop: tuple) -> None:
    order, folder, _ = shop
    (folder / "portrait 2.png").write_bytes(png(4))
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    assert job(ws, order).conflicts == []


# ------------------------------------------------------------------------------------------- tidying


def test_tidying_a_paired_layered_file_after_approval_changes_nothing(ws: Workspace, settings: Settings,
                                                                      shop: tuple) -> None:
    order, folder, service = shop
    (folder / "portrait.kra").write_bytes(kra(5))
    (folder / "portrait.png").write_bytes(png(5))
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    settle(ws, order, folder, 2)
    delivered = approve_and_deliver(ws, settings, order, 1)
    (folder / "old").mkdir()
    os.rename(folder / "portrait.kra", folder / "old" / "portrait.kra")  # `mv` into old/
    os.rename(folder / "portrait.png", folder / "final portrait.png")  # and a rename
    wait_for(lambda: len(events(ws, order, "file_moved")) == 2, timeout=PATIENCE)
    wait_for(lambda: service.health()["queue_length"] == 0, timeout=PATIENCE)
    current = job(ws, order)
    assert len(current.versions) == 2 and current.approved_version == 1
    assert current.state is JobState.READY_TO_DELIVER
    assert sorted(p.name for p in delivery.deliver_dir(ws, order.receipt_id).iterdir()) == delivered
    moves = {(m["from"], m["to"]) for m in events(ws, order, "file_moved")}
    assert moves == {("portrait.kra", "old/portrait.kra"), ("portrait.png", "final portrait.png")}


# ------------------------------------------------------------------------------------------- pairing


@pytest.mark.parametrize("layered_first", [True, False], ids=["save-then-export", "export-then-save"])
def test_a_layered_save_and_its_export_are_one_version_whichever_comes_first(
        layered_first: bool, ws: Workspace, shop: tuple) -> None:
    order, folder, _ = shop
    first, second = (("portrait.kra", kra(6)), ("portrait.png", png(6)))[:: 1 if layered_first else -1]
    (folder / first[0]).write_bytes(first[1])
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)  # the first is a version on its own for now
    (folder / second[0]).write_bytes(second[1])
    wait_for(lambda: (v := job(ws, order).versions[0]).paired_sha256 and v.preview, timeout=PATIENCE)
    settle(ws, order, folder, 2)
    (v1, _marker) = job(ws, order).versions
    assert v1.source_name == "portrait.png" and v1.paired_with == "portrait.kra"
    assert ws.tool_path(v1.copy).read_bytes() == png(6)  # the version is the export: what gets delivered


def test_clip_studio_save_then_export_is_one_version(ws: Workspace, shop: tuple) -> None:
    order, folder, service = shop
    (folder / "portrait.clip").write_bytes(clip_file(b"layers" * 1000))
    write_chunked(folder / "portrait.png", png(7), chunks=3, pause=0.5)  # "File > Export" right after
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    wait_for(lambda: service.health()["queue_length"] == 0, timeout=PATIENCE)  # the .clip (10 s quiet) judged
    (v,) = job(ws, order).versions
    assert v.source_name == "portrait.png" and v.paired_with == "portrait.clip" and v.preview


# -------------------------------------------------------------------------------------- completeness


def clip_file(payload: bytes, *, cut: int = 0) -> bytes:
    """A Clip Studio container: CSFCHUNK + declared length, CHNKHead, CHNKExta, CHNKFoot."""
    body = b"CHNKHead" + struct.pack(">Q", 40) + bytes(40)
    body += b"CHNKExta" + struct.pack(">Q", len(payload)) + payload + b"CHNKFoot" + struct.pack(">Q", 0)
    data = b"CSFCHUNK" + struct.pack(">QQ", 24 + len(body), 24) + body
    return data[: len(data) - cut] if cut else data


def test_an_interrupted_clip_save_is_never_a_version(ws: Workspace, shop: tuple) -> None:
    order, folder, _ = shop
    whole = clip_file(os.urandom(1_000_000))
    (folder / "portrait.clip").write_bytes(whole[:600_000])  # the save stopped here
    wait_for(lambda: job(ws, order).last_error, timeout=PATIENCE)
    current = job(ws, order)
    assert current.versions == [] and "still being written" in (current.last_error or "")
    with open(folder / "portrait.clip", "ab") as fh:  # the save completes
        fh.write(whole[600_000:])
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    (v,) = job(ws, order).versions
    assert v.size == len(whole) and v.note == "no preview for .clip files: export a PNG beside it"
    assert job(ws, order).last_error is None


def test_an_affinity_in_place_save_with_a_stall_is_one_whole_version(ws: Workspace, shop: tuple) -> None:
    order, folder, _ = shop
    old, new = os.urandom(400_000), os.urandom(400_000)
    (folder / "portrait.af").write_bytes(old)
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    with open(folder / "portrait.af", "r+b") as fh:  # in place: first half, a 3 s stall, second half
        fh.write(new[:200_000])
        fh.flush()
        time.sleep(3.0)
        fh.write(new[200_000:])
    wait_for(version_count(ws, order, 2), timeout=PATIENCE)
    settle(ws, order, folder, 3)
    versions = job(ws, order).versions
    assert [ws.tool_path(v.copy).read_bytes() for v in versions[:2]] == [old, new]  # never the mix


def test_a_png_missing_only_its_iend_is_being_written(ws: Workspace, shop: tuple) -> None:
    order, folder, _ = shop
    data = png(8, (500, 400))
    (folder / "portrait.png").write_bytes(data[:-12])
    wait_for(lambda: job(ws, order).last_error, timeout=PATIENCE)
    assert job(ws, order).versions == []
    with open(folder / "portrait.png", "ab") as fh:
        fh.write(data[-12:])
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    assert ws.tool_path(job(ws, order).versions[0].copy).read_bytes() == data


def test_directory_events_never_shorten_an_in_place_writers_quiet_period(ws: Workspace, shop: tuple) -> None:
    """GIMP-style in-place chunks with 1.5 s gaps, while another program keeps creating and renaming files
    in the folder (each a directory event, like kaalwatch's own order.yaml writes): one whole version."""
    order, folder, _ = shop
    data = os.urandom(900_000)
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            (folder / f"notes-{n}.txt").write_text("x")
            os.replace(folder / f"notes-{n}.txt", folder / "notes.txt")
            n += 1
            time.sleep(0.05)

    noise = threading.Thread(target=churn)
    noise.start()
    try:
        write_chunked(folder / "portrait.xcf", data, chunks=4, pause=1.5)
    finally:
        stop.set()
        noise.join()
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    settle(ws, order, folder, 2)
    (v, _marker) = job(ws, order).versions
    assert ws.tool_path(v.copy).read_bytes() == data


# ------------------------------------------------------------------------------------------ transfers


def test_real_cp_rsync_and_a_qsavefile_are_one_version_each(ws: Workspace, shop: tuple, tmp_path: Path) -> None:
    order, folder, _ = shop
    sources = [tmp_path / f"s{n}.png" for n in range(3)]
    for n, src in enumerate(sources):
        src.write_bytes(png(20 + n, (1200, 900)))
        os.utime(src, (time.time() - 86_400, time.time() - 86_400))  # an old mtime, kept by cp -p and rsync -t
    subprocess.run(["cp", "-p", str(sources[0]), str(folder / "portrait.png")], check=True)
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    rsync = shutil.which("rsync")
    assert rsync, "rsync is installed by .ci/run"
    shutil.copyfile(sources[1], tmp_path / "portrait.png")
    os.utime(tmp_path / "portrait.png", (time.time() - 86_400, time.time() - 86_400))
    subprocess.run([rsync, "-t", str(tmp_path / "portrait.png"), str(folder) + "/"], check=True)
    wait_for(version_count(ws, order, 2), timeout=PATIENCE)
    # Qt's QSaveFile (Krita, many Qt apps): "<name>.XXXXXX" beside the target, written, then renamed over it.
    temp = folder / "portrait.png.Ab12Cd"
    write_chunked(temp, sources[2].read_bytes(), chunks=4, pause=0.3)
    os.replace(temp, folder / "portrait.png")
    wait_for(version_count(ws, order, 3), timeout=PATIENCE)
    settle(ws, order, folder, 4)
    versions = job(ws, order).versions
    assert [ws.tool_path(v.copy).read_bytes() for v in versions[:3]] == [s.read_bytes() for s in sources]
    assert len(versions) == 4


# ----------------------------------------------------------------------------------- downloads, formats


def test_browser_downloads_in_progress_are_ignored_without_error(ws: Workspace, shop: tuple) -> None:
    order, folder, service = shop
    data = png(30)
    bundle = folder / "portrait.png.download"  # Safari
    bundle.mkdir()
    (bundle / "portrait.png").write_bytes(data[: len(data) // 2])
    (folder / "sketch.png.crdownload").write_bytes(data[:100])  # Chrome
    (folder / "study.png.part").write_bytes(data[:100])  # Firefox
    wait_for(lambda: service.health()["queue_length"] == 0, timeout=PATIENCE)  # all of it judged
    current = job(ws, order)
    assert current.last_error is None and current.versions == []
    (bundle / "portrait.png").write_bytes(data)
    os.replace(bundle / "portrait.png", folder / "portrait.png")  # the download finishes
    bundle.rmdir()
    wait_for(version_count(ws, order, 1), timeout=PATIENCE)
    assert job(ws, order).versions[-1].source_name == "portrait.png"


def test_newer_formats_are_never_silent(ws: Workspace, shop: tuple) -> None:
    from PIL import Image

    order, folder, _ = shop
    im = Image.new("RGB", (120, 90), (30, 140, 200))
    im.save(folder / "portrait.avif")
    (folder / "sketch.af").write_bytes(b"\x00\xffKA" + os.urandom(5000))
    (folder / "study.pxd").write_bytes(os.urandom(5000))
    (folder / "paint.rif").write_bytes(b"RIFF" + os.urandom(5000))  # Corel Painter
    wait_for(version_count(ws, order, 4), timeout=PATIENCE)
    by_name = {v.source_name: v for v in job(ws, order).versions}
    assert by_name["portrait.avif"].preview and by_name["portrait.avif"].width == 120
    assert by_name["sketch.af"].note == "no preview for .af files: export a PNG beside it"
    assert by_name["study.pxd"].note == "no preview for .pxd files: export a PNG beside it"
    assert by_name["paint.rif"].note == "no preview for .rif files: export a PNG beside it"
