"""Layered source + export: which files are one save, decided from names and mtimes only.

A layered or closed document (``.psd``, ``.kra``, ``.clip``, ``.af``…) and a raster export with the same
stem (``portrait.kra`` + ``portrait.png``) are one save when their mtimes lie within
``PAIR_WINDOW_SECONDS`` of each other, whichever was written first: the export is the version (it is
what the buyer sees and what is delivered) and the layered file is recorded with it (``paired_with``,
``paired_sha256``). The rule reads only names and mtimes, so a restart or a rescan decides the same.
Which version a pair makes (``completes``, ``still_completes``, ``version_of``) is decided from the job alone.
"""

from __future__ import annotations

import hashlib
import os
import stat as stat_module
from pathlib import Path

from kaalwatch.imaging import FileKind, classify
from kaalwatch.model import Job

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


def version_of(job: Job, sha: str) -> int | None:
    """The version whose bytes, or whose paired layered source's bytes, are ``sha``."""
    return next((v.number for v in reversed(job.versions) if sha in (v.sha256, v.paired_sha256)), None)


def completes(job: Job, layered_sha: str) -> int | None:
    """The version an export completes: the job's latest, when it is its layered source saved alone (its
    bytes are ``layered_sha`` and nothing is paired with it yet) and no proof or approval has used it."""
    latest = job.latest
    if latest is not None and latest.sha256 == layered_sha and latest.paired_sha256 is None \
            and job.approved_version != latest.number and all(p.version != latest.number for p in job.proofs):
        return latest.number
    return None


def still_completes(job: Job, number: int, layered_sha: str) -> bool:
    """At commit, under the order's lock: the job has not moved on since ``completes`` chose ``number``."""
    latest = job.latest
    return latest is not None and latest.number == number and latest.sha256 == layered_sha


def file_sha256(path: Path) -> tuple[str, os.stat_result]:
    """The content hash of ``path`` and its stat taken before reading (the caller compares it after)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        before = os.fstat(fh.fileno())
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), before


__all__ = ["EXPORT_SUFFIXES", "LAYERED_KINDS", "PAIR_WINDOW_SECONDS", "completes", "export_sibling", "file_sha256",
           "is_layered", "layered_sibling", "paired", "still_completes", "version_of"]
