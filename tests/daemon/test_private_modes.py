"""Private by default: under the usual umask (022) every file the tool writes is 0600 and every folder 0700.

First through the library (each writer on its own, with ``private.configure`` never called), then through
``kaalwatch run`` as a real process started under umask 022 against the sandbox: a synced order, a save
turned into a version with its preview, the index, the watcher's database, logs and state files.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch import doctor, logs, private
from kaalwatch.imaging import render_reference_thumbnail
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch.seen import SeenStore
from tests.daemon.conftest import Connected, DaemonProcess
from tests.daemon.test_end_to_end import folder_of, png_bytes, save_like_photoshop
from tests.support.polling import wait_for
from tests.support.umask import umask


def loose(root: Path, skip: Callable[[Path], bool] = lambda _p: False) -> list[str]:
    """Every file not 0600/0400 and folder not 0700 under ``root`` (symlinks ignored)."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or skip(path):
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if (path.is_dir() and mode != 0o700) or (path.is_file() and mode not in (0o600, 0o400)):
            found.append(f"{oct(mode)} {path.relative_to(root)}")
    return found


def jpeg_with_metadata(text: bytes) -> bytes:
    """A buyer's photo carrying their words in a JPEG comment, XMP, an EXIF description and GPS."""
    exif = Image.Exif()
    exif[0x010E] = text.decode()  # ImageDescription
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPSInfo
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG", comment=text, exif=exif,
                                                   xmp=b"<x:xmpmeta>" + text + b"</x:xmpmeta>")
    return out.getvalue()


def test_every_writer_is_private_under_umask_022(tmp_path: Path, settings: Settings,
                                                   make_order: Callable[..., Order]) -> None:
    with umask(0o022):
        ws = Workspace(settings)
        ws.create()
        folder = ws.add_order(make_order(jobs=2, buyer="Zenobia Quartermaine"))
        ws.write_state("probe", {"a": 1})
        seen = SeenStore(ws.tool_dir / "watch.sqlite")
        seen.put_file(1, "x.png", 1, 1, "h")
        logs.setup("info", ws.logs_dir)
        src = folder / "references" / "photo.jpg"
        src.write_bytes(jpeg_with_metadata(b"Zenobia at 12 Elm Street"))
        assert b"Elm Street" in src.read_bytes()
        os.chmod(src, 0o600)  # the downloader's file; this test is about the thumbnail written from it
        thumb = ws.previews_dir / "1" / "references" / "t.jpg"
        private.make_dir(thumb.parent)
        render_reference_thumbnail(src, thumb)
        try:
            assert loose(ws.root) == []
            assert ws.index_path.exists() and (ws.tool_dir / "watch.sqlite-wal").exists()
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # named after the buyer
            with Image.open(thumb) as im:
                assert not {"comment", "xmp", "exif"} & set(im.info) and not im.getexif()
            assert b"Elm Street" not in thumb.read_bytes() and b"Zenobia" not in thumb.read_bytes()
            assert doctor.check_modes(settings).ok
            os.chmod(folder, 0o755)
            os.chmod(folder / "order.yaml", 0o644)
            check = doctor.check_modes(settings)
            assert not check.ok and "1 file(s) and 1 folder(s)" in check.line
            assert check.fix == f"chmod -R go-rwx '{ws.root}'"
        finally:
            seen.close()
            ws.close()
            logs.remove_handlers()


@pytest.mark.slow
def test_a_real_daemon_under_umask_022_writes_nothing_others_can_read(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess]) -> None:
    ws, sb = connected.ws, connected.sandbox
    receipt_id = int(sb.add_order()["receipt_id"])
    with umask(0o022):  # the daemon inherits it
        daemon = daemon_factory(connected.config, ws.root, "umask").start()
    daemon.wait_healthy()
    folder = wait_for(lambda: folder_of(ws, receipt_id), 30, what=f"a folder for order {receipt_id}")
    save_like_photoshop(folder, "artwork.png", png_bytes(3))

    def previewed() -> bool:
        job = ws.load(receipt_id).jobs[0]
        return bool(job.versions and job.versions[0].preview and job.versions[0].thumb)

    wait_for(previewed, 30, what="version 1 with its preview")
    wait_for(lambda: (ws.tool_dir / "watch.sqlite").exists(), 10, what="the watcher's database")
    code, _took = daemon.terminate()
    assert code == 0, daemon.output()
    # The artist's own file keeps the mode the artist's tool gave it; everything else is the tool's.
    assert loose(ws.root, skip=lambda p: p.name == "artwork.png") == []
    assert (ws.logs_dir / "kaalwatch.log").stat().st_size > 0
