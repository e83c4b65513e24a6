"""The watcher's processed-files cache turns SQLite failures (a full disk) into one clear WorkspaceError."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kaalwatch.errors import WorkspaceError
from kaalwatch.watch import seen


def test_cache_that_cannot_be_opened_is_a_workspace_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(seen.sqlite3, "connect", full_disk)
    store = seen.SeenStore(tmp_path / "watch.sqlite")
    with pytest.raises(WorkspaceError, match=r"cannot use .*watch.sqlite: disk I/O error \(free some space"):
        store.file(1, "a.png")
