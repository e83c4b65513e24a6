"""Hostile files saved into job folders go through the real watcher rescan: each is a clear error on its job
(or, for formats we never render, a version without a preview), and the next good save still becomes a version.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
import zlib
from collections.abc import Callable

import pytest
from PIL import Image

from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import rescan_order

pytestmark = pytest.mark.slow


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb() -> bytes:
    """A 40,000 × 40,000 PNG header (1.6 gigapixels) over a few bytes of data."""
    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)) \
        + _png_chunk(b"IEND", b"")


def good_png(seed: int = 1) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((120, 90), 40 + seed).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def zip_as_png() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mergedimage.png", good_png())
        archive.writestr("../../../escape.txt", "zip slip")
    return out.getvalue()


def huge_exif_jpeg() -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = "A" * 60_000  # ImageDescription: an APP1 segment near its 64 KB limit
    Image.new("RGB", (64, 48), (200, 100, 50)).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def kra(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


HOSTILE: dict[str, bytes] = {
    # A merged image that inflates 1000-fold (a zip bomb), and one with no merged image but hostile names.
    "zip-bomb.kra": kra({"mergedimage.png": b"\0" * (50 << 20)}),
    "no-merged.kra": kra({"../../escape.txt": b"zip slip", "/etc/x": b"1"}),
    "bomb.png": bomb(),
    "truncated.png": good_png()[:300],
    "corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20,
    "really-a-zip.png": zip_as_png(),
    "huge-exif.jpg": huge_exif_jpeg(),
    "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
                   b'<image href="file:///etc/passwd"/></svg>',
    "empty.png": b"",
    "polyglot.png": b"\x89PNG\r\n\x1a\n" + b"<html><script>alert(1)</script></html>" + zip_as_png(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_file_in_a_job_folder_is_a_clear_error_and_the_next_good_save_is_a_version(
        settings: Settings, ws: Workspace, make_order: Callable[..., Order], name: str) -> None:
    s = dataclasses.replace(settings, watcher=dataclasses.replace(settings.watcher, quiet_seconds=0.0))
    order = make_order()
    folder = ws.add_order(order)
    (folder / name).write_bytes(HOSTILE[name])
    report = rescan_order(ws, s, order.receipt_id, max_wait=20)
    job = ws.load(order.receipt_id).jobs[0]
    assert list(ws.root.rglob("escape.txt")) == []
    if name == "huge-exif.jpg":
        # Metadata is not pixels: a real JPEG with a large EXIF block is a normal version.
        assert [v.number for v in job.versions] == [1] and job.versions[0].preview
    elif name == "drawing.svg":
        # Versioned as a file the tool does not draw: never rendered, so nothing in it runs or is fetched.
        assert all(v.preview is None and v.thumb is None for v in job.versions)
    elif name == "empty.png":
        assert job.versions == []  # a file still being created: waited for, not an error
    elif name in ("truncated.png", "corrupt.jpg"):
        # Cut off before its end marker: "still being written", shown on the job, never a version.
        assert job.versions == [] and job.last_error and f"'{name}'" in job.last_error
        assert "still being written or was cut off" in job.last_error and report.pending, report.summary()
    else:
        assert job.versions == [], job.versions
        assert job.last_error and f"'{name}'" in job.last_error and "cannot be read as an image" in job.last_error
        assert report.errors, report.summary()
    # The watcher keeps going: the artist deletes the bad file and saves again; that save becomes the next
    # version and clears the error.
    (folder / name).unlink()
    (folder / "portrait-final.png").write_bytes(good_png(7))
    rescan_order(ws, s, order.receipt_id, max_wait=20)
    job = ws.load(order.receipt_id).jobs[0]
    assert job.versions[-1].source_name == "portrait-final.png" and job.versions[-1].preview
    assert not (job.last_error or "").startswith(f"'{name}'")
    assert len(list(ws.previews_dir.rglob("*.jpg"))) == 2 * sum(1 for v in job.versions if v.preview)


def test_the_error_of_an_undecodable_save_names_only_the_artists_file(
        settings: Settings, ws: Workspace, make_order: Callable[..., Order]) -> None:
    s = dataclasses.replace(settings, watcher=dataclasses.replace(settings.watcher, quiet_seconds=0.0))
    order = make_order()
    folder = ws.add_order(order)
    (folder / "corrupt.jpg").write_bytes(HOSTILE["corrupt.jpg"])
    rescan_order(ws, s, order.receipt_id, max_wait=20)
    error = ws.load(order.receipt_id).jobs[0].last_error or ""
    assert "'corrupt.jpg'" in error
    assert ".staging-" not in error and str(ws.tool_dir) not in error
