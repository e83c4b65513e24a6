"""The one atomic writer: a streamed copy, and a check of the finished file before it takes the name."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaalwatch.atomic import atomic_copy, atomic_open, atomic_write_bytes, is_temp_name


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
