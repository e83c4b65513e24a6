"""A really full disk (a small tmpfs) and a read-only workspace, against the real store and the real CLI.

The workspace core's own tests inject ``ENOSPC`` at one call; here the filesystem itself is full, so every
write on the way (temporary file, rename, SQLite index) meets the fault as it would in real life.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch import atomic, lifecycle
from kaalwatch.errors import WorkspaceError
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, Workspace
from tests.faults.conftest import fill_disk, free_disk, mounted_tmpfs, remount, run_cli, write_config
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow


def temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if atomic.is_temp_name(p.name)]


def test_manifest_edit_on_a_full_disk_fails_clearly_keeps_the_old_file_and_works_once_space_returns(
        tmpfs_settings: Settings, make_order: Callable[..., Order]) -> None:
    ws = Workspace(tmpfs_settings)
    ws.create()
    try:
        order = make_order(jobs=2)
        folder = ws.add_order(order)
        before = (folder / MANIFEST).read_bytes()
        filler = fill_disk(ws.root)
        with pytest.raises(WorkspaceError, match=r"^disk full while writing .*order\.yaml \(free some space"), \
                ws.edit(order.receipt_id) as loaded:
            lifecycle.add_note(loaded, "no room for this")
        assert (folder / MANIFEST).read_bytes() == before
        assert temp_leftovers(ws.root) == []
        assert ws.load(order.receipt_id).notes == []

        free_disk(filler)
        with ws.edit(order.receipt_id) as loaded:
            lifecycle.add_note(loaded, "room again")
        assert [n.text for n in ws.load(order.receipt_id).notes] == ["room again"]
        assert ws.jobs()[0].receipt_id == order.receipt_id  # the index followed
    finally:
        ws.close()


def test_new_order_on_a_full_disk_fails_clearly_leaves_no_half_folder_and_is_created_once_later(
        tmpfs_settings: Settings, make_order: Callable[..., Order]) -> None:
    ws = Workspace(tmpfs_settings)
    ws.create()
    try:
        ws.add_order(make_order())  # an order already there must stay as it is
        existing = sorted(p.name for p in ws.orders_dir.iterdir())
        order = make_order(jobs=2)
        filler = fill_disk(ws.root)
        with pytest.raises(WorkspaceError, match=r"^disk full while writing "):
            ws.add_order(order)
        # No folder without a manifest: the artist would see an order that the tool does not know.
        assert sorted(p.name for p in ws.orders_dir.iterdir()) == existing
        assert temp_leftovers(ws.root) == []

        free_disk(filler)
        folder = ws.add_order(order)
        assert folder.name.startswith(str(order.receipt_id))
        assert not folder.name.endswith("(2)")
        assert len([p for p in ws.orders_dir.iterdir() if p.name.startswith(str(order.receipt_id))]) == 1
        assert ws.load(order.receipt_id).receipt_id == order.receipt_id
    finally:
        ws.close()


def test_sync_state_on_a_full_disk_keeps_the_previous_high_water_mark(tmpfs_settings: Settings) -> None:
    ws = Workspace(tmpfs_settings)
    ws.create()
    ws.write_state("sync", {"high_water": 100})
    filler = fill_disk(ws.root)
    with pytest.raises(WorkspaceError, match=r"^disk full while writing .*sync\.json"):
        ws.write_state("sync", {"high_water": 200, "padding": "x" * 50_000})
    assert ws.read_state("sync") == {"high_water": 100}
    free_disk(filler)
    ws.write_state("sync", {"high_water": 200})
    assert ws.read_state("sync") == {"high_water": 200}


def test_full_disk_at_start_up_is_one_clear_line_from_the_real_cli(tmp_path: Path, settings: Settings,
                                                                   make_order: Callable[..., Order]) -> None:
    with mounted_tmpfs(tmp_path / "mnt") as mount:
        ws_root = mount / "ws"
        config = write_config(tmp_path / "config.yaml", {"workspace": str(ws_root)})
        ws = Workspace(dataclasses.replace(settings, workspace=ws_root))
        ws.create()
        ws.add_order(make_order())
        ws.close()  # no open connection: SQLite must create its WAL files anew, as a fresh process does
        filler = fill_disk(ws_root)
        done = run_cli(["status"], config)
        free_disk(filler)
        again = run_cli(["status"], config)
    assert done.returncode == WorkspaceError.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kaalwatch: error: "), done.stderr
    assert "disk is full" in lines[0] and "internal error" not in lines[0]
    assert again.returncode == 0, again.stderr
    assert "Pet portrait 1" in again.stdout


@pytest.mark.parametrize("command", [["status"], ["run"]])
def test_read_only_workspace_is_reported_at_start_up_by_the_real_cli(tmp_path: Path, settings: Settings,
                                                                     command: list[str]) -> None:
    with mounted_tmpfs(tmp_path / "mnt") as mount:
        ws_root = mount / "ws"
        config = write_config(tmp_path / "config.yaml", {"workspace": str(ws_root)})
        Workspace(dataclasses.replace(settings, workspace=ws_root)).create()
        remount(mount, "ro")
        try:
            done = run_cli(command, config, timeout=60)
        finally:
            remount(mount, "rw")
    assert done.returncode == WorkspaceError.exit_code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"kaalwatch: error: workspace {ws_root} is not writable: Read-only file system")
    assert "remount it read-write" in lines[0]


def _noisy_png(path: Path, size: tuple[int, int] = (700, 500)) -> bytes:
    """A PNG that does not compress (noise), so its size is predictable on a nearly full disk."""
    from PIL import Image

    Image.effect_noise(size, 60).convert("RGB").save(path, format="PNG")
    return path.read_bytes()


def _leave_free(root: Path, filler: Path, keep: int) -> None:
    """Shrink the free space of the filesystem at ``root`` to about ``keep`` bytes (page-aligned)."""
    free_disk(filler)
    stat = os.statvfs(root)
    free = stat.f_bavail * stat.f_frsize
    page = stat.f_frsize
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - (keep // page + 1) * page))


@pytest.mark.parametrize("where", ["version copy", "preview"])
def test_full_disk_while_the_watcher_saves_a_version_fails_clearly_and_the_version_appears_once_space_returns(
        tmp_path: Path, settings: Settings, make_order: Callable[..., Order], where: str) -> None:
    from kaalwatch.watch import WatchService

    with mounted_tmpfs(tmp_path / "mnt", size="8m") as mount:
        fast = dataclasses.replace(settings.watcher, quiet_seconds=0.3, rescan_minutes=60.0, workers=1)
        s = dataclasses.replace(settings, workspace=mount / "ws", watcher=fast)
        ws = Workspace(s)
        ws.create()
        order = make_order()
        folder = ws.add_order(order)
        service = WatchService(ws, s)
        service.start()
        try:
            wait_for(lambda: service.health()["alive"], 20, what="the watcher to start")
            manifest = (folder / MANIFEST).read_bytes()
            # Written under an ignored name, then renamed in: the save pattern of Photoshop and friends.
            data = _noisy_png(folder / "portrait.png.part")
            filler = fill_disk(ws.root)
            if where == "preview":
                _leave_free(ws.root, filler, keep=len(data))  # room for the copy, none for the preview
            os.replace(folder / "portrait.png.part", folder / "portrait.png")
            wait_for(lambda: "No space left on device" in (service.health()["last_error"] or ""), 30,
                     what="the watcher to report the full disk")
            assert (folder / MANIFEST).read_bytes() == manifest  # nothing half-recorded
            assert [p.name for p in ws.versions_dir.rglob("*") if p.is_file()] == []
            assert [p.name for p in ws.previews_dir.rglob("*") if p.is_file()] == []

            free_disk(filler)
            service.rescan(order.receipt_id)
            job = ws.load(order.receipt_id).jobs[0]
            assert [v.number for v in job.versions] == [1]
            version = job.versions[0]
            assert ws.tool_path(version.copy).read_bytes() == data
            assert version.preview and version.thumb
            from PIL import Image

            for rel in (version.preview, version.thumb):
                with Image.open(ws.tool_path(rel)) as image:
                    image.load()  # complete and decodable
        finally:
            service.stop()
            ws.close()
