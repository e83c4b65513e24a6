"""What a hostile file may not exceed, and the one-line error that says so (shared by the decoder and the
container readers)."""

from __future__ import annotations

from pathlib import Path

from kaalwatch.errors import ImageError

#: Default pixel cap: twice Pillow's own warning threshold (Pillow raises above this too).
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: A ZIP member (mergedimage.png, a thumbnail) larger than this uncompressed is refused.
MAX_MEMBER_BYTES = 1 << 30
#: A member that inflates more than this many times its stored size is treated as a zip bomb.
#: PNG data inside .kra/.ora is already deflated, so real files sit near 1:1.
MAX_ZIP_RATIO = 200
#: EXIF larger than this is refused (a JPEG APP1 segment cannot exceed 64 KB; anything huge is hostile).
MAX_EXIF_BYTES = 1 << 20


def fail(path: Path, why: str) -> ImageError:
    """The error for ``path``: one line, always, because the message is shown as-is on the order."""
    return ImageError(f"{path.name}: {' '.join(why.split())}")


def check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    """Refuse an impossible size, and a decompression bomb from its header, before any pixel is decoded."""
    w, h = size
    if w <= 0 or h <= 0:
        raise fail(path, f"declares an impossible size {w}x{h}")
    if w * h > max_pixels:
        raise fail(
            path,
            f"is {w}x{h} = {w * h / 1e6:.0f} Mpx, over the {max_pixels / 1e6:.0f} Mpx limit "
            "(decompression bomb guard; raise max_pixels if this is a real artwork)",
        )
