"""The viewer's image pyramid: a version's immutable copy cut into 512-px tiles at halving resolutions.

Level 0 is the original's own pixels; level ``z`` is the original shrunk by ``2**z``; the coarsest level
fits one tile. The page asks only for the tiles it shows at the zoom it shows them, so a 100-megapixel
PSD never travels to the browser whole, and the server never holds more than one decoded image at a time.

A level is built on first use, from one decode of the original through :func:`preview._prepare` (the
same pixel caps, bomb checks, EXIF orientation, sRGB conversion and background flattening as the
previews), and every coarser level still missing is built from that same image by halving it. Tiles are
JPEG without chroma subsampling (4:4:4): a 512-px tile encodes in a few ms where a PNG of painted art
takes 25-70 ms, and its pixels stay within a level or two of the original's (see ``LEVEL0_QUALITY``).

A level is written into a temporary folder and renamed into place, so a reader sees a level whole or not
at all, and two builders (the daemon warming, the page asking) cannot leave a mixture.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from kaalwatch.imaging.decode import DEFAULT_MAX_PIXELS
from kaalwatch.imaging.formats import classify
from kaalwatch.imaging.preview import _prepare

TILE = 512
#: Level 0 is where the owner checks the original's pixels: q98 4:4:4 stays within ~1.4 levels of them even
#: on +-40 per-pixel noise (q95: 3.2; q100: 0.5 at 1.4x the bytes). Coarser levels are overviews: q90.
LEVEL0_QUALITY = 98
TILE_QUALITY = 90
#: Levels no larger than this are "the overview": what a first paint needs; the daemon builds them early.
OVERVIEW_EDGE = 2048


@dataclass(frozen=True)
class Pyramid:
    """The tile grid of an image of ``width`` x ``height`` pixels."""

    width: int
    height: int
    levels: int
    tile: int = TILE

    def size(self, level: int) -> tuple[int, int]:
        scale = 1 << level
        return max(1, math.ceil(self.width / scale)), max(1, math.ceil(self.height / scale))

    def grid(self, level: int) -> tuple[int, int]:
        w, h = self.size(level)
        return math.ceil(w / self.tile), math.ceil(h / self.tile)

    def overview_level(self) -> int:
        """The finest level whose long edge is at most ``OVERVIEW_EDGE``."""
        return next(z for z in range(self.levels) if max(self.size(z)) <= OVERVIEW_EDGE)


def plan(width: int, height: int, tile: int = TILE) -> Pyramid:
    if width < 1 or height < 1:
        raise ValueError(f"an image of {width}x{height} has no tiles")
    levels = 1 + max(0, math.ceil(math.log2(max(width, height) / tile)))
    return Pyramid(width, height, levels, tile)


def tile_path(cache: Path, level: int, x: int, y: int) -> Path:
    return cache / str(level) / f"{x}_{y}.jpg"


def has_level(cache: Path, level: int) -> bool:
    return (cache / str(level)).is_dir()


def _write_level(cache: Path, pyramid: Pyramid, level: int, im: Image.Image) -> None:
    target = cache / str(level)
    if target.is_dir():
        return
    cache.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{level}-", dir=cache))
    try:
        columns, rows = pyramid.grid(level)
        for y in range(rows):
            for x in range(columns):
                box = (x * pyramid.tile, y * pyramid.tile,
                       min(im.width, (x + 1) * pyramid.tile), min(im.height, (y + 1) * pyramid.tile))
                im.crop(box).save(temp / f"{x}_{y}.jpg", "JPEG", subsampling=0,
                                  quality=LEVEL0_QUALITY if level == 0 else TILE_QUALITY)
        try:
            os.replace(temp, target)
        except OSError:
            if not target.is_dir():  # another builder won the race: its level is as good as ours
                raise
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def build(src: Path, cache: Path, pyramid: Pyramid, level: int, *, background: str = "#ffffff",
          max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Make ``level`` and every coarser level still missing from one decode of ``src``.

    Raises ``ImageError`` (one line) for a file that will not decode within ``max_pixels``.
    """
    missing = [z for z in range(level, pyramid.levels) if not has_level(cache, z)]
    if not missing:
        return
    edge = max(pyramid.size(missing[0]))
    im, _, _, _ = _prepare(Path(src), edge, background, max_pixels, classify(Path(src)))
    for z in range(missing[0], pyramid.levels):
        want = pyramid.size(z)
        if im.size != want:
            # Shrinking: an area average. Growing only happens to a file that carries just a small stored
            # composite (low_res): it is shown at its full size, soft, rather than as a corner.
            im = im.resize(want, Image.Resampling.BOX if max(im.size) > max(want) else Image.Resampling.BICUBIC)
        if z in missing:
            _write_level(cache, pyramid, z, im)
