"""Decide from a file's name alone whether it is litter to ignore, a sync conflict, or artwork to version.

Names are hostile input: every rule is a regular expression on the base name (never on the whole path,
never evaluated), and the user can add more through ``watcher.ignore_patterns``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kaalwatch.imaging import FileKind, classify
from kaalwatch.imaging.formats import suffix_of

#: Temporary and litter names from art tools, sync clients, browsers, office suites and operating systems
#: (see docs: shared notes "file-watching"). Hidden names (".…") are all ignored: no art tool saves the
#: artwork itself as a dot-file, while Syncthing, iCloud, Krita autosaves, AppleDouble and lock files do.
BUILTIN_IGNORES: tuple[str, ...] = (
    r"^\.",  # .DS_Store, ._x, .syncthing.x.tmp, .x.icloud, .~lock.x#, .krita-*-autosave.kra
    r"~$",  # Krita's backup "name.kra~", editors' backups
    r"^~",  # ~$office lock, ~syncthing~x.tmp
    r"(?i)-autosave\.kra$",  # Krita autosave
    r"(?i)\.(part|crdownload|download|partial|tmp|temp|swp|bak)$",  # downloads, temp files, backups
    r"(?i)^(thumbs\.db|desktop\.ini|icon\r)$",  # Windows/macOS litter
)

#: Folder names whose whole content is never looked at, wherever they are.
IGNORED_DIRS: frozenset[str] = frozenset({"@eaDir", "__MACOSX", ".Trashes", ".dropbox.cache", "$RECYCLE.BIN"})
#: Folders that are downloads in progress: Safari saves "name.png.download/" (a bundle holding the partial
#: file) and renames the finished file out of it; a stalled or abandoned one must never look like artwork.
DOWNLOAD_DIR_SUFFIXES: tuple[str, ...] = (".download", ".crdownload", ".part", ".partial")

#: Closed formats that are versioned as files and previewed from an export beside them.
CLOSED_SUFFIXES: frozenset[str] = frozenset(
    {".afphoto", ".afdesign", ".af", ".clip", ".xcf", ".sai", ".sai2", ".pdn", ".pxd", ".ai", ".svg", ".pdf", ".csp",
     ".mdp", ".avif", ".jxl",
     # Other painting and image formats an artist may save or export: versioned with "no preview for .x",
     # never silently passed over (Painter, ArtRage, Pixelmator, Paint Shop Pro, Corel, TVPaint, EPS, HDR,
     # Targa, JPEG 2000, QOI). Camera raw files are photos, like HEIC: references, not artwork.
     ".rif", ".riff", ".ptg", ".pxm", ".psp", ".pspimage", ".cpt", ".cdr", ".tvpp", ".eps", ".psdt",
     ".exr", ".hdr", ".tga", ".jp2", ".j2k", ".qoi"}
)

_CONFLICT_RES: tuple[re.Pattern[str], ...] = (
    # Syncthing: name.sync-conflict-20240501-101500-ABCDEF7.ext
    re.compile(r"^(?P<stem>.+)\.sync-conflict-\d{8}-\d{6}-[A-Z0-9]{7}(?P<ext>\.[^.]*)?$"),
    # Dropbox, Nextcloud/ownCloud, Google Drive: name (Someone's conflicted copy 2024-05-01).ext,
    # name (conflicted copy 2024-05-01 101500).ext, name (Conflicted copy Ada 2024-05-01).ext
    re.compile(r"^(?P<stem>.+?) \([^()]*conflicted copy[^()]*\)(?P<ext>\.[^.]*)?$", re.IGNORECASE),
    # older Nextcloud/ownCloud clients: name_conflict-20240501-101500.ext
    re.compile(r"^(?P<stem>.+)_conflict-\d{8}-\d{6}(?P<ext>\.[^.]*)?$"),
    # Google Drive: "[Conflict] name.ext"; Backup and Sync: name_conf(1).ext
    re.compile(r"^\[Conflict\] (?P<stem>.+?)(?P<ext>\.[^.]*)?$", re.IGNORECASE),
    re.compile(r"^(?P<stem>.+)_conf\(\d+\)(?P<ext>\.[^.]*)?$"),
    # OneDrive keeps both copies with the computer's name: name-DESKTOP-AB12CD3.ext, name-LAPTOP-XY.ext
    re.compile(r"^(?P<stem>.+)-(?:DESKTOP|LAPTOP)-[A-Z0-9]{4,15}(?P<ext>\.[^.]*)?$"),
)
#: iCloud Drive keeps the other device's copy as "name 2.ext". Artists also number files that way, so it is
#: a conflict only when "name.ext" itself is in the same folder (the pair iCloud leaves behind).
_NUMBERED_COPY = re.compile(r"^(?P<stem>.+) (?P<n>[2-9]|[1-9]\d)(?P<ext>\.[^.]*)?$")


def conflict_original(name: str, sibling_exists: Callable[[str], bool] | None = None) -> str | None:
    """The name a sync client's conflict copy stands for, or None when ``name`` is not a conflict copy.

    ``sibling_exists`` (a name in the same folder → does it exist) enables the iCloud "name 2.ext" rule.
    """
    for pattern in _CONFLICT_RES:
        match = pattern.match(name)
        if match:
            return match.group("stem") + (match.group("ext") or "")
    match = _NUMBERED_COPY.match(name)
    if match and sibling_exists is not None:
        original = match.group("stem") + (match.group("ext") or "")
        if sibling_exists(original):
            return original
    return None


@dataclass(frozen=True)
class IgnoreRules:
    """Which base names are litter. Handles: hidden files, temp/partial downloads, Krita backups and
    autosaves, Office/LibreOffice locks, Syncthing temp names, iCloud stubs, OS litter, user patterns.

    Conflict copies are *not* ignored (a conflict copy may hold the artist's newest work).
    """

    extra: tuple[str, ...] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The built-in rules as one alternation (a rescan asks this for every file of every order folder);
        # the user's patterns stay separate, since they may carry flags of their own.
        builtin = "|".join(f"(?:{_scoped(p)})" for p in BUILTIN_IGNORES)
        object.__setattr__(self, "_compiled", (re.compile(builtin), *(re.compile(p) for p in self.extra)))

    def ignores(self, name: str) -> bool:
        return any(p.search(name) for p in self._compiled)

    def ignores_dir(self, name: str) -> bool:
        return name.startswith(".") or name in IGNORED_DIRS or name.lower().endswith(DOWNLOAD_DIR_SUFFIXES)


def _scoped(pattern: str) -> str:
    """A leading "(?i)" becomes a scoped "(?i:…)", so the pattern can sit inside an alternation."""
    return f"(?i:{pattern[4:]})" if pattern.startswith("(?i)") else pattern


def is_artwork_name(name: str) -> bool:
    """Suffixes that are artwork: everything the imaging core can preview, and known closed formats.

    Anything else in a job folder (notes.txt, a .zip of brushes) is not a version.
    """
    kind = classify(name)
    if kind is FileKind.HEIC:
        return False  # phone photos are references, not artwork the artist saves
    return kind is not FileKind.OTHER or suffix_of(name) in CLOSED_SUFFIXES
