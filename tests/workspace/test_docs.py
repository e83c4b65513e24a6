"""The README documents every command and every settings section, and carries Etsy's required notice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kaalwatch.cli import COMMANDS
from kaalwatch.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
NOTICE = ("The term 'Etsy' is a trademark of Etsy, Inc. This application uses the Etsy API but is not endorsed or\n"
          "certified by Etsy, Inc.")


def test_every_command_is_in_the_readme() -> None:
    missing = [name for name in COMMANDS if f"`kaalwatch {name}" not in README]
    assert missing == []


def test_every_settings_section_is_in_the_readme_or_config() -> None:
    config = (Path(__file__).resolve().parents[2] / "config.yaml").read_text(encoding="utf-8")
    for f in dataclasses.fields(Settings):
        assert f"{f.name}:" in config, f.name


def test_etsy_notice_is_in_the_readme() -> None:
    assert NOTICE in README


def test_readme_starts_with_the_two_commands() -> None:
    head = README[: README.index("## What it does")]
    assert "python3 tasks.py demo" in head and "python3 tasks.py test" in head
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().endswith("python3 tasks.py test")


def test_every_test_named_in_the_guarantees_exists() -> None:
    """The README's guarantees name their tests; a renamed or deleted test must not leave a dead claim."""
    import re

    root = Path(__file__).resolve().parents[2]
    section = README[README.index("## What kaalwatch guarantees"): README.index("## Benchmarks")]
    current: Path | None = None
    checked = 0
    for token in re.findall(r"`([^`]+)`", section):
        path_part, _, name = token.partition("::")
        if path_part.startswith(("tests/", "bench/")):
            current = root / path_part
            assert current.exists(), token
            checked += 1
        if not name and token.startswith("test_"):
            name = token
        if name and name.isidentifier():
            assert current is not None and current.is_file(), token
            assert re.search(rf"^def {re.escape(name)}\(", current.read_text(encoding="utf-8"), re.M), token
            checked += 1
    assert checked >= 30
