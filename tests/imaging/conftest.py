"""Sample-file factories for the imaging tests: every format generated small, in the test's tmp dir."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.inputs import write_psd  # noqa: F401 - one PSD writer, shared with the benchmark (PackBits rows)
from kaalwatch.imaging import PreviewSpec, WatermarkSpec

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def artwork(w: int = 640, h: int = 480, alpha: bool = False, seed: int = 0) -> Image.Image:
    """A small non-flat picture: gradient, shapes and noise (flat colour would hide resampling bugs)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    arr = np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)),
                    np.broadcast_to((x + y) / 2, (h, w))], axis=-1)
    arr = np.clip(arr + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    ImageDraw.Draw(im).ellipse((w // 4, h // 4, w // 2, h // 2), fill=(200, 30, 60))
    if alpha:
        a = Image.new("L", (w, h), 0)
        ImageDraw.Draw(a).rectangle((w // 8, h // 8, w * 7 // 8, h * 7 // 8), fill=255)
        im.putalpha(a)
    return im


def write_zip(path: Path, members: dict[str, bytes], *, compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 64)
    idat_chunk = b"IDAT" + idat
    body += struct.pack(">I", len(idat)) + idat_chunk + struct.pack(">I", zlib.crc32(idat_chunk))
    body += struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, fmt=None, im=None, **save_args)``: save an artwork under tmp_path and return it."""

    def _make(name: str, fmt: str | None = None, im: Image.Image | None = None, **save: object) -> Path:
        path = tmp_path / name
        (im or artwork()).save(path, fmt, **save)
        return path

    return _make


@pytest.fixture
def spec() -> PreviewSpec:
    return PreviewSpec(watermark=WatermarkSpec())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def icc_swapped_primaries() -> bytes:
    """A minimal ICC v2 RGB matrix/TRC profile whose red and green primaries are sRGB's swapped.

    A pure-red pixel tagged with it *means* sRGB green, so a correct conversion to sRGB turns it green;
    a pipeline that ignores the profile leaves it red. (No ICC files ship on the test machines.)
    """
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)

    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233) + b"\x00\x00"  # gamma 2.2, padded
    desc_text = b"swapped primaries\x00"
    desc = (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(desc_text)) + desc_text
            + b"\x00" * 8 + b"\x00\x00\x00" + b"\x00" * 67)
    desc += b"\x00" * (-len(desc) % 4)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.3851, 0.7169, 0.0971)),  # sRGB's green colorant (D50)
        (b"gXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red colorant
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
        (b"cprt", b"text\x00\x00\x00\x00public domain\x00\x00\x00"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"\x00" * 4 + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + b"\x00" * 12 + b"acsp" + b"\x00" * 24 + b"\x00" * 4
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\x00" * 4 + b"\x00" * 16 + b"\x00" * 28)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
