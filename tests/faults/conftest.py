"""Helpers of the fault suite: real tmpfs mounts, a disk filler, polling waits and the real CLI as a process."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kaalwatch.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """A real, small tmpfs at ``where``; the test is skipped (one line) where mounting is refused."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        # Lazy unmount: a sqlite handle or a stopped thread's descriptor must not fail the teardown.
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True, capture_output=True)


def fill_disk(folder: Path) -> Path:
    """Write a filler file until the filesystem is really full (ENOSPC); returns it so space can return."""
    filler = folder / "filler.bin"
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # Fill the tail too: a last partial page would let a tiny manifest through.
    with open(folder / "filler-tail.bin", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0")
    return filler


def free_disk(filler: Path) -> None:
    for path in (filler, filler.with_name("filler-tail.bin")):
        path.unlink(missing_ok=True)


@pytest.fixture
def tmpfs_settings(tmp_path: Path) -> Iterator[Settings]:
    """Default settings whose workspace is the root of a fresh 2 MB tmpfs."""
    with mounted_tmpfs(tmp_path / "mnt") as mount:
        base = load_settings(env={}, use_default_path=False)
        yield dataclasses.replace(base, workspace=mount / "ws")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: nothing KAALWATCH_* leaks in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAALWATCH_")}
    env.update(extra)
    return env


def write_config(path: Path, data: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_cli(args: list[str], config: Path, *, timeout: float = 60, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``kaalwatch --config CONFIG ARGS`` as a real process."""
    return subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=timeout, env=env or clean_env(), cwd=REPO, input=stdin, check=False)
