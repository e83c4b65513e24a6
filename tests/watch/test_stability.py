"""The pure stability tracker, with an injected clock and a temp dir only."""

from __future__ import annotations

import os
from pathlib import Path

from kaalwatch.watch.stability import StabilityTracker, is_placeholder

Q = 2.0


def test_due_only_after_quiet_period_and_clock_restarts_on_event(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 10)
    t = StabilityTracker(Q)
    t.touch(f, 100.0)
    assert t.due(101.9) == []
    t.touch(f, 101.9)  # a new event restarts the clock
    assert t.due(103.0) == []
    assert t.due(103.9) == [f]
    assert len(t) == 0 and t.due(200.0) == []


def test_size_or_mtime_change_without_event_restarts_the_clock(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 10)
    t = StabilityTracker(Q)
    t.touch(f, 0.0)
    with open(f, "ab") as fh:
        fh.write(b"more")
    assert t.due(2.5) == []  # changed since the touch: not stable yet
    assert t.due(4.0) == []
    assert t.due(4.5) == [f]


def test_mtime_only_change_restarts(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"x" * 10)
    t = StabilityTracker(Q)
    t.touch(f, 0.0)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert t.due(3.0) == []
    assert t.due(5.0) == [f]


def test_deleted_before_stable_is_dropped_and_rearmed_later(tmp_path: Path) -> None:
    f = tmp_path / "a.png"
    f.write_bytes(b"x")
    t = StabilityTracker(Q)
    t.touch(f, 0.0)
    f.unlink()
    assert t.due(5.0) == [] and f not in t
    f.write_bytes(b"again")
    t.touch(f, 6.0)  # never given up for good
    assert t.due(8.0) == [f]


def test_zero_byte_and_directories_are_not_due(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    folder = tmp_path / "dir.png"
    folder.mkdir()
    t = StabilityTracker(Q)
    t.touch(empty, 0.0)
    t.touch(folder, 0.0)
    assert t.due(10.0) == []
    assert len(t) == 0


def test_placeholder_waits_until_it_holds_data(tmp_path: Path) -> None:
    f = tmp_path / "cloud.png"
    with open(f, "wb") as fh:
        fh.truncate(4096)  # reports a size, no blocks allocated: a dataless placeholder
    st = f.stat()
    if st.st_blocks != 0:  # pragma: no cover - a filesystem that allocates on truncate
        import pytest

        pytest.skip("this filesystem allocates blocks on truncate, so it cannot fake a placeholder")
    assert is_placeholder(st)
    t = StabilityTracker(Q)
    t.touch(f, 0.0)
    assert t.due(3.0) == [] and f in t
    f.write_bytes(b"z" * 4096)
    t.touch(f, 3.0)
    assert t.due(5.5) == [f]


def test_quiet_since_makes_an_old_file_due_at_once(tmp_path: Path) -> None:
    f = tmp_path / "old.png"
    f.write_bytes(b"data")
    t = StabilityTracker(Q)
    t.touch(f, 50.0, quiet_since=10.0)
    assert t.next_deadline() == 12.0
    assert t.due(50.0) == [f]


def test_injected_stat_is_used(tmp_path: Path) -> None:
    calls: list[Path] = []
    f = tmp_path / "a.png"
    f.write_bytes(b"abc")

    def fake_stat(p: Path) -> os.stat_result:
        calls.append(p)
        return os.lstat(p)

    t = StabilityTracker(Q, stat=fake_stat)
    t.touch(f, 0.0)
    assert t.due(2.0) == [f]
    assert calls == [f, f]
