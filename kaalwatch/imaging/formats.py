"""Classify a path into the kind of file the imaging core knows how to turn into pixels.

Classification is by file name only (cheap, no I/O) so the watcher can decide what to do with a path it
has just seen; what the bytes really are is checked when the file is decoded (``decode.sniff``), because
a name can lie.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from PIL import features


class FileKind(enum.StrEnum):
    """What kind of source a file is, which decides how its pixels are obtained."""

    RASTER = "raster"  # PNG, JPEG, TIFF, WebP, BMP, GIF: Pillow decodes them directly
    PSD = "psd"  # PSD/PSB: the merged composite, or psd-tools layer compositing when none is stored
    KRA = "kra"  # Krita: ZIP holding mergedimage.png
    ORA = "ora"  # OpenRaster: ZIP holding mergedimage.png
    PROCREATE = "procreate"  # ZIP holding QuickLook/Thumbnail.png (low resolution)
    HEIC = "heic"  # phone photos (buyer references), through pillow-heif
    OTHER = "other"  # versioned as a file, previewed only from a PNG/JPEG exported beside it


_SUFFIXES: dict[str, FileKind] = {
    ".png": FileKind.RASTER,
    ".jpg": FileKind.RASTER,
    ".jpeg": FileKind.RASTER,
    ".jpe": FileKind.RASTER,
    ".jfif": FileKind.RASTER,
    ".tif": FileKind.RASTER,
    ".tiff": FileKind.RASTER,
    ".webp": FileKind.RASTER,
    ".bmp": FileKind.RASTER,
    ".gif": FileKind.RASTER,
    ".psd": FileKind.PSD,
    ".psb": FileKind.PSD,
    ".kra": FileKind.KRA,
    ".ora": FileKind.ORA,
    ".procreate": FileKind.PROCREATE,
    ".heic": FileKind.HEIC,
    ".heif": FileKind.HEIC,
    ".hif": FileKind.HEIC,
}


def _optional_raster() -> dict[str, FileKind]:
    """AVIF and JPEG XL are decoded where this installation can (Pillow built with libavif, the
    pillow-jxl-plugin extra); elsewhere they are closed formats: versioned, with "no preview for .x"."""
    found: dict[str, FileKind] = {}
    if features.check("avif"):
        found[".avif"] = FileKind.RASTER
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL codec with Pillow)
    except ImportError:
        pass
    else:
        found[".jxl"] = FileKind.RASTER
    return found


_SUFFIXES.update(_optional_raster())

def suffix_of(path: Path | str) -> str:
    """The lower-case suffix of a name, as ``Path.suffix`` gives it, without building a Path (a rescan asks
    this for every file of every order folder)."""
    name = os.path.basename(os.fspath(path))
    dot = name.rfind(".")
    return name[dot:].lower() if 0 < dot < len(name) - 1 else ""


def classify(path: Path | str) -> FileKind:
    """Return the kind of ``path`` from its suffix (case-insensitive); unknown suffixes are OTHER."""
    return _SUFFIXES.get(suffix_of(path), FileKind.OTHER)
