"""Private by default: files holding buyer data are 0600 and folders 0700, whatever the user's umask.

Order folders carry buyers' names, manifests their messages, references their photos, the index and the
watcher's database their names and file names, logs receipt ids. On a shared machine the usual umask
(022) would make all of it readable by every local account. Two layers keep it private:

* :func:`configure` sets the process umask to 077 once, where the settings are loaded (the CLI), so every
  file and folder any part creates — SQLite's WAL and shm files, the rotating log, Pillow's outputs,
  downloads — starts private without each writer having to remember;
* the writers kaalwatch owns (the atomic writer, :func:`make_dir`, the SQLite stores, the log handler) set
  the mode explicitly with :func:`file_mode` / :func:`dir_mode`, so library callers that never ran
  :func:`configure` (tests, scripts) get the same result.

The setting ``private_files: false`` is for an orders folder shared with another account through a sync
client: the modes then follow the umask the process started with. ``kaalwatch doctor`` reports files and
folders looser than these modes with the command that fixes them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077


@dataclass
class _Modes:
    file: int = 0o600
    dir: int = 0o700


# Process-wide on purpose: the umask is process-wide too, and the two must agree. Set once by configure().
_modes = _Modes()


def configure(private: bool) -> None:
    """Apply the ``private_files`` setting to this process (call once, after loading the settings)."""
    if private:
        os.umask(PRIVATE_UMASK)
        _modes.file, _modes.dir = 0o600, 0o700
        return
    current = os.umask(PRIVATE_UMASK)
    os.umask(current)
    _modes.file, _modes.dir = 0o666 & ~current, 0o777 & ~current


def file_mode() -> int:
    """The mode of a file holding buyer data (0600 unless relaxed)."""
    return _modes.file


def read_only_mode() -> int:
    """An immutable copy: :func:`file_mode` without write permission (0400 unless relaxed)."""
    return _modes.file & 0o444


def dir_mode() -> int:
    """The mode of a folder holding buyer data (0700 unless relaxed)."""
    return _modes.dir


def make_dir(path: Path, *, parents: bool = True, exist_ok: bool = True) -> Path:
    """``mkdir`` with :func:`dir_mode` for the folder and every parent it creates (set explicitly:
    ``mkdir``'s mode is filtered by the umask). A folder that already exists is left as it is."""
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    if not parents:
        missing = missing[:1]
    path.mkdir(parents=parents, exist_ok=exist_ok)
    for folder in missing:
        if folder.exists():
            restrict(folder)
    return path


def restrict(path: Path) -> None:
    """Give an existing file or folder the private mode (a no-op for symlinks and missing paths)."""
    with contextlib.suppress(OSError):
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            os.chmod(path, dir_mode())
        elif stat.S_ISREG(st.st_mode):
            # An immutable version copy stays read-only.
            os.chmod(path, file_mode() if st.st_mode & stat.S_IWUSR else read_only_mode())


def restrict_sqlite(path: Path) -> None:
    """A SQLite database and its WAL/shm companions (SQLite gives those the database file's mode)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        restrict(path.with_name(path.name + suffix))


def too_open(mode: int, is_dir: bool) -> bool:
    """True when ``mode`` gives group or others more than the configured private mode allows."""
    allowed = dir_mode() if is_dir else file_mode()
    return bool(stat.S_IMODE(mode) & 0o077 & ~allowed)


__all__ = ["configure", "dir_mode", "file_mode", "make_dir", "read_only_mode", "restrict", "restrict_sqlite",
           "too_open"]
