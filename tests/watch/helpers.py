"""Test helpers for the watcher: polling waits, and files written the way art tools and sync clients write them."""

from __future__ import annotations

import io
import os
import struct
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

from kaalwatch.imaging import PreviewSpec, RenderResult, render_previews


def picture(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    im = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, 120))
    draw = ImageDraw.Draw(im)
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] // 2 + seed % 50, size[1] // 2), fill=(200, 30, seed % 256))
    draw.text((10, 10), f"save {seed}", fill=(0, 0, 0))
    return im


def encode(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def png(seed: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    return encode(picture(seed, size))


def psd(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A minimal valid PSD (raw composite, no layers) like Photoshop's "maximize compatibility" save."""
    im = picture(seed, size)
    w, h = im.size
    out = io.BytesIO()
    out.write(b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3))
    out.write(struct.pack(">I", 0) + struct.pack(">I", 0) + struct.pack(">I", 0))
    out.write(struct.pack(">H", 0) + b"".join(c.tobytes() for c in im.split()))
    return out.getvalue()


def zip_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def kra(seed: int = 0) -> bytes:
    return zip_with({"mimetype": b"application/x-krita", "mergedimage.png": png(seed)})


def ora(seed: int = 0) -> bytes:
    return zip_with({"mimetype": b"image/openraster", "mergedimage.png": png(seed)})


def procreate(seed: int = 0) -> bytes:
    return zip_with({"Document.archive": b"bplist00", "QuickLook/Thumbnail.png": png(seed, (120, 90))})


def write_chunked(path: Path, data: bytes, chunks: int = 6, pause: float = 0.15) -> None:
    """Write ``data`` in place in several flushed chunks with pauses, as GIMP or a Krita export does."""
    step = max(1, len(data) // chunks)
    with open(path, "wb") as fh:
        for start in range(0, len(data), step):
            fh.write(data[start:start + step])
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(pause)


def write_then_rename(path: Path, data: bytes, temp_name: str) -> None:
    """Write a temporary file beside the target and rename it over the target (Photoshop, Syncthing)."""
    temp = path.parent / temp_name
    temp.write_bytes(data)
    os.replace(temp, path)


class ThreadPreviewPool:
    """The PreviewPool interface over threads (real rendering, without spawning processes per test)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="test-render")
        self.renders = 0
        self.warms = 0

    def submit(self, src: Path, preview_out: Path, thumb_out: Path, spec: PreviewSpec,
               text: str) -> Future[RenderResult]:
        self.renders += 1
        return self._executor.submit(render_previews, src, preview_out, thumb_out, spec, text)

    def warm(self) -> None:
        """Threads start in microseconds: only counted, so tests can see when the watcher asks."""
        self.warms += 1

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait)
