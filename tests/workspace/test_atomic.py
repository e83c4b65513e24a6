"""The one atomic writer: a streamed copy, and a check of the finished file before it takes the name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

import pytest

from kaalwatch import atomic
from kaalwatch.atomic import atomic_copy, atomic_open, atomic_write_bytes, is_temp_name
from kaalwatch.watch import ingest


def test_atomic_copy_streams_the_bytes_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    src = tmp_path / "sample.jpg"
    src.write_bytes(bytes(range(256)) * 5000)  # bigger than one copy buffer
    dst = tmp_path / "order" / "references" / "style sample.jpg"
    dst.parent.mkdir(parents=True)
    atomic_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert [p.name for p in dst.parent.iterdir()] == ["style sample.jpg"]


def test_a_failed_check_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    atomic_write_bytes(path, b"old")
    seen: list[bytes] = []

    def refuse(tmp: Path) -> None:
        seen.append(tmp.read_bytes())
        assert is_temp_name(tmp.name)
        raise ValueError("too many pixels")

    with pytest.raises(ValueError), atomic_open(path, check=refuse) as handle:
        handle.write(b"new")
    assert seen == [b"new"]  # the check saw the finished file
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["photo.png"]


def test_a_long_staging_copy_starts_writeback_as_it_goes_and_keeps_every_byte(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "portrait.tif"
    src.write_bytes(os.urandom(1 << 20) * 20 + b"tail")  # 20 MB and 4 bytes: two writebacks and a tail
    handed: list[tuple[int, int]] = []
    real = atomic.start_writeback

    def spy(handle: BinaryIO, offset: int, length: int) -> None:
        handed.append((offset, length))
        real(handle, offset, length)

    monkeypatch.setattr(ingest, "start_writeback", spy)
    staged, sha, size, _ = ingest.stage_copy(src, tmp_path / "versions")
    assert staged.read_bytes() == src.read_bytes()
    assert (sha, size) == (hashlib.sha256(src.read_bytes()).hexdigest(), src.stat().st_size)
    assert handed == [(0, 8 << 20), (8 << 20, 8 << 20)]  # consecutive ranges, the tail left to the fsync


def test_writeback_where_the_system_has_none_leaves_it_all_to_the_fsync(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "_sync_file_range", lambda: None)
    path = tmp_path / "a.bin"
    with atomic_open(path) as handle:
        handle.write(b"x" * 100)
        atomic.start_writeback(handle, 0, 100)
        handle.write(b"y")
    assert path.read_bytes() == b"x" * 100 + b"y"
