"""Layered source + export: which files are one save, decided from names and mtimes only.

A layered or closed document (``.psd``, ``.kra``, ``.clip``, ``.af``…) and a raster export with the same
stem (``portrait.kra`` + ``portrait.png``) are one save when their mtimes lie within
``PAIR_WINDOW_SECONDS`` of each other, whichever was written first: the export is the version (it is
what the buyer sees and what is delivered) and the layered file is recorded with it (``paired_with``,
``paired_sha256``). The rule reads only names and mtimes, so a restart or a rescan decides the same.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
from pathlib import Path

from kaalwatch.imaging import FileKind, classify

#: An export and its layered source saved this close together (either first) are the same save.
PAIR_WINDOW_SECONDS = 120.0
EXPORT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
LAYERED_KINDS = frozenset({FileKind.PSD, FileKind.KRA, FileKind.ORA, FileKind.PROCREATE, FileKind.OTHER})
_CHUNK = 1 << 20


def is_layered(name: str) -> bool:
    """A document that may have a raster export beside it (anything but the export formats themselves)."""
    return classify(name) in LAYERED_KINDS and not name.lower().endswith(EXPORT_SUFFIXES)


def paired(source_ns: int, export_ns: int) -> bool:
    return abs(export_ns - source_ns) <= int(PAIR_WINDOW_SECONDS * 1e9)


def export_sibling(path: Path, st: os.stat_result) -> Path | None:
    """For a layered source: its same-stem raster export saved with it, if there is one."""
    for suffix in EXPORT_SUFFIXES:
        for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            try:
                other = candidate.stat()
            except OSError:
                continue
            if stat_module.S_ISREG(other.st_mode) and other.st_size > 0 and paired(st.st_mtime_ns, other.st_mtime_ns):
                return candidate
    return None


def layered_sibling(path: Path, st: os.stat_result) -> Path | None:
    """For a raster export: the layered source it was exported from, if saved with it."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return None
    stem = path.stem
    for entry in entries:
        if entry.name == path.name or Path(entry.name).stem != stem or not is_layered(entry.name):
            continue
        try:
            other = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat_module.S_ISREG(other.st_mode) and other.st_size > 0 and paired(other.st_mtime_ns, st.st_mtime_ns):
            return Path(entry.path)
    return None


def file_sha256(path: Path) -> tuple[str, os.stat_result]:
    """The content hash of ``path`` and its stat taken before reading (the caller compares it after)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        before = os.fstat(fh.fileno())
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), before


__all__ = ["EXPORT_SUFFIXES", "LAYERED_KINDS", "PAIR_WINDOW_SECONDS", "export_sibling", "file_sha256", "is_layered",
           "layered_sibling", "paired"]
