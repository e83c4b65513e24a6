"""Ignore rules, conflict names and where a file sits in an order (pure functions)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kaalwatch.model import Order
from kaalwatch.watch.ignore import IgnoreRules, conflict_original, is_artwork_name
from kaalwatch.watch.locate import Role, role_in_order

RULES = IgnoreRules()


@pytest.mark.parametrize("name", [
    ".DS_Store", "._portrait.png", "Thumbs.db", "desktop.ini", ".syncthing.portrait.png.tmp",
    "~syncthing~portrait.png.tmp", ".portrait.png.icloud", "portrait.png.part", "portrait.png.crdownload",
    "portrait.png.download", "~$notes.docx", ".~lock.notes.odt#", "portrait.kra~", "portrait-autosave.kra",
    ".krita-1234-autosave.kra", "portrait.psd.tmp",
])
def test_litter_is_ignored(name: str) -> None:
    assert RULES.ignores(name)


@pytest.mark.parametrize("name", ["portrait.png", "Portrait final (1).PSD", "ça va.kra", "a~b.png",
                                  "portrait.sync-conflict-20240501-101500-ABCDEF7.png"])
def test_artwork_and_conflicts_are_not_ignored(name: str) -> None:
    assert not RULES.ignores(name)


def test_user_patterns_extend_the_rules() -> None:
    rules = IgnoreRules((r"^draft-",))
    assert rules.ignores("draft-1.png") and not rules.ignores("final.png")


@pytest.mark.parametrize("name, original", [
    ("portrait.sync-conflict-20240501-101500-ABCDEF7.png", "portrait.png"),
    ("portrait (Kaal's conflicted copy 2024-05-01).psd", "portrait.psd"),
    ("portrait (conflicted copy 2024-05-01 101500).png", "portrait.png"),
    ("portrait-DESKTOP-AB12CD3.png", "portrait.png"),
    ("portrait.png", None),
    ("portrait (1).png", None),
])
def test_conflict_names(name: str, original: str | None) -> None:
    assert conflict_original(name) == original


def test_artwork_suffixes() -> None:
    assert all(is_artwork_name(n) for n in ("a.png", "a.JPG", "a.psd", "a.kra", "a.ora", "a.procreate", "a.afphoto"))
    assert not any(is_artwork_name(n) for n in ("notes.txt", "brushes.zip", "photo.heic", "order.yaml"))
    # Painting and image formats kaalwatch cannot preview are still versions ("no preview for .x"), never nothing.
    assert all(is_artwork_name(n) for n in ("a.rif", "a.ptg", "a.pxm", "a.pspimage", "a.tvpp", "a.exr", "a.TGA",
                                            "a.jp2", "a.qoi", "a.af", "a.pxd"))


def test_roles_in_a_single_item_order(make_order: Callable[..., Order]) -> None:
    order = make_order()
    job = order.jobs[0].job_id
    assert role_in_order(("portrait.png",), order, RULES) == (Role.ARTWORK, job, "portrait.png")
    assert role_in_order(("wip", "sketch.png"), order, RULES) == (Role.ARTWORK, job, "wip/sketch.png")
    assert role_in_order(("references", "dog.jpg"), order, RULES) == (Role.REFERENCE, job, "dog.jpg")
    for parts in [("deliver", "x.png"), ("order.yaml",), (".hidden", "x.png"), ("notes.txt",),
                  ("portrait.kra~",), ("__MACOSX", "x.png"), ("references", "sub", "x.jpg")]:
        assert role_in_order(parts, order, RULES)[0] is Role.IGNORED, parts


def test_roles_in_a_multi_item_order(make_order: Callable[..., Order]) -> None:
    order = make_order(jobs=2)
    order.jobs[0].folder, order.jobs[1].folder = "1 Pet", "2 Pet"
    assert role_in_order(("2 Pet", "x.png"), order, RULES) == (Role.ARTWORK, order.jobs[1].job_id, "x.png")
    assert role_in_order(("1 Pet", "references", "r.jpg"), order, RULES)[:2] == (Role.REFERENCE, order.jobs[0].job_id)
    assert role_in_order(("references", "r.jpg"), order, RULES)[:2] == (Role.REFERENCE, None)
    assert role_in_order(("x.png",), order, RULES)[0] is Role.MISPLACED
    assert role_in_order(("other", "x.png"), order, RULES)[0] is Role.MISPLACED
    assert role_in_order(("notes.txt",), order, RULES)[0] is Role.IGNORED
