#!/usr/bin/env python3
"""Set up and run kaalwatch from a checkout with nothing but Python 3.11+: ``python3 tasks.py demo|test|bench|lint``.

Each task creates ``.venv`` on first use and reinstalls when ``pyproject.toml`` changed, so every task is
idempotent and needs no other tool (no make, no global pip installs). ``lint`` is ruff then mypy (configured
in ``pyproject.toml``); ``test`` is lint then pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"
LINT_PATHS = ["kaalwatch", "review_app", "tests", "bench", "tasks.py"]


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    completed = subprocess.run([str(c) for c in cmd], cwd=ROOT)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def ensure_venv() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs on whatever python3 the user has
        sys.exit(f"kaalwatch needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = BIN / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pyproject = ROOT / "pyproject.toml"
    if not STAMP.exists() or STAMP.stat().st_mtime < pyproject.stat().st_mtime:
        run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        run(python, "-m", "pip", "install", "--quiet", "-e", ".[test]")
        STAMP.touch()
    return python


def lint(python: Path) -> None:
    run(python, "-m", "ruff", "check", *LINT_PATHS)
    run(python, "-m", "mypy")  # paths, strictness and the cache folder are in pyproject.toml


def main(argv: list[str]) -> None:
    tasks = ("demo", "test", "bench", "lint")
    if not argv or argv[0] not in tasks:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(tasks)}}} [arguments passed on]\n{__doc__}")
    task, rest = argv[0], argv[1:]
    python = ensure_venv()
    if task == "demo":
        run(BIN / "kaalwatch", "demo", *rest)
    elif task == "lint":
        lint(python)
    elif task == "test":
        lint(python)
        run(python, "-m", "pytest", *rest)
    elif task == "bench":
        run(python, "-m", "bench", *rest)


if __name__ == "__main__":
    main(sys.argv[1:])
