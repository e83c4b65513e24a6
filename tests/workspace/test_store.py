"""The workspace on disk: atomic locked writes, hostile manifests, moved folders, full and read-only disks."""

from __future__ import annotations

import errno
import multiprocessing
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from kaalwatch import atomic, lifecycle
from kaalwatch.errors import ManifestError, NotFoundError, WorkspaceError
from kaalwatch.manifest import order_from_dict, order_to_dict
from kaalwatch.migrations import SCHEMA_VERSION
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, Workspace


def test_round_trip_of_a_manifest(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order(jobs=2)
    ws.add_order(order)
    loaded = ws.load(order.receipt_id)
    assert order_to_dict(loaded) == order_to_dict(order)
    assert order_from_dict(order_to_dict(loaded)) == loaded


def test_layout_one_folder_per_order_and_subfolders_per_job(ws: Workspace, make_order: Callable[..., Order]) -> None:
    single = ws.add_order(make_order(buyer="Ada", titles=["Pet portrait"]))
    assert sorted(p.name for p in single.iterdir()) == [MANIFEST, "references"]
    multi = ws.add_order(make_order(jobs=2, titles=["Cat", "Cat"]))
    assert sorted(p.name for p in multi.iterdir()) == ["1 Cat", "2 Cat", MANIFEST, "references"]
    assert (multi / "2 Cat" / "references").is_dir()
    assert oct((single / MANIFEST).stat().st_mode & 0o777) == "0o600"


def test_hostile_buyer_name_cannot_escape_orders(ws: Workspace, make_order: Callable[..., Order]) -> None:
    folder = ws.add_order(make_order(buyer="../../../etc/passwd\nCON", titles=["x" * 500]))
    assert folder.parent == ws.orders_dir
    assert len(folder.name.encode()) <= 120


def test_edit_writes_only_when_something_changed(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    before = (folder / MANIFEST).stat().st_mtime_ns
    with ws.edit(order.receipt_id) as loaded:
        loaded.jobs[0].title = loaded.jobs[0].title  # no change
    assert (folder / MANIFEST).stat().st_mtime_ns == before
    with ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "hello")
    assert ws.load(order.receipt_id).notes[0].text == "hello"


def test_failed_change_writes_nothing(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    text = (folder / MANIFEST).read_text()
    with pytest.raises(NotFoundError), ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "will be lost with the error")
        lifecycle.approve(loaded, loaded.jobs[0].job_id, 99)
    assert (folder / MANIFEST).read_text() == text


def test_crash_between_write_and_rename_leaves_the_old_manifest(ws: Workspace, make_order: Callable[..., Order],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    order = make_order()
    folder = ws.add_order(order)
    text = (folder / MANIFEST).read_text()

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt("power cut")  # BaseException, as a kill would be

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt), ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "never lands")
    monkeypatch.undo()
    assert (folder / MANIFEST).read_text() == text
    assert [p.name for p in folder.iterdir() if atomic.is_temp_name(p.name)] == []
    assert ws.load(order.receipt_id).notes == []


def test_leftover_temp_file_from_a_kill_is_harmless(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    (folder / f".{MANIFEST}{atomic.TEMP_MARK}dead").write_text("half a manif")
    assert ws.load(order.receipt_id).receipt_id == order.receipt_id


def test_disk_full_is_one_clear_error_and_keeps_the_old_file(ws: Workspace, make_order: Callable[..., Order],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    order = make_order()
    folder = ws.add_order(order)
    text = (folder / MANIFEST).read_text()
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):  # type: ignore[no-untyped-def]
            self.handle = handle

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.handle.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(WorkspaceError, match=r"disk full while writing .*order.yaml \(free some space"), \
            ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "no room")
    monkeypatch.undo()
    assert (folder / MANIFEST).read_text() == text
    with ws.edit(order.receipt_id) as loaded:  # and it works once space returns
        lifecycle.add_note(loaded, "room again")
    assert ws.load(order.receipt_id).notes[0].text == "room again"


def test_new_order_that_cannot_be_written_leaves_no_folder_and_no_twin_on_retry(
        ws: Workspace, make_order: Callable[..., Order], monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression (issue 10, found on a full tmpfs): the folders were made, the manifest write failed, and
    # an empty order folder stayed; the retry then created "<name> (2)" beside it.
    order = make_order(jobs=2)

    def full(path: Path, text: str, mode: int = 0o644) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("kaalwatch.store.atomic_write_text", full)
    with pytest.raises(WorkspaceError, match=r"disk full while writing .*order\.yaml"):
        ws.add_order(order)
    monkeypatch.undo()
    assert list(ws.orders_dir.iterdir()) == []
    folder = ws.add_order(order)
    assert [p.name for p in ws.orders_dir.iterdir()] == [folder.name]
    assert not folder.name.endswith("(2)")
    assert [e.event for e in ws.load(order.receipt_id).history] == ["order_created"]


def test_index_that_cannot_be_opened_is_a_workspace_error_naming_it(settings: Settings,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression (issue 10): on a full disk SQLite cannot create its WAL files; `kaalwatch status` then
    # ended in "internal error: OperationalError: disk I/O error".
    Workspace(settings).create()

    def no_room(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("kaalwatch.index.sqlite3.connect", no_room)
    with pytest.raises(WorkspaceError, match=r"^cannot use the index .*index\.sqlite: disk I/O error \(free some"):
        Workspace(settings).jobs()


def test_manifest_written_but_index_not_updated_is_not_a_failure(ws: Workspace, make_order: Callable[..., Order],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression (issue 10): the manifest was saved, then the index update hit a full disk and the edit
    # raised, so callers retried a change that had already happened.
    order = make_order()
    ws.add_order(order)

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(ws.index, "record", full)
    with ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "saved anyway")
    monkeypatch.undo()
    assert [n.text for n in ws.load(order.receipt_id).notes] == ["saved anyway"]
    assert ws.refresh_index().parsed == 1  # the stale row is noticed and re-read


def test_broken_manifest_is_reported_with_line_and_left_untouched(
    ws: Workspace, make_order: Callable[..., Order]
) -> None:
    good = make_order()
    ws.add_order(good)
    bad = make_order()
    bad_folder = ws.add_order(bad)
    broken_text = (bad_folder / MANIFEST).read_text().replace("jobs:", "jobs: [unclosed", 1)
    (bad_folder / MANIFEST).write_text(broken_text)
    with pytest.raises(ManifestError, match=r"order.yaml: line \d+: .*\(fix or restore the file"):
        ws.load(bad.receipt_id)
    report = ws.refresh_index()
    assert len(report.broken) == 1 and "order.yaml" in report.broken[0][1]
    assert (bad_folder / MANIFEST).read_text() == broken_text
    assert ws.load(good.receipt_id).receipt_id == good.receipt_id  # the rest keeps working
    assert [row.receipt_id for row in ws.jobs()] == [good.receipt_id, bad.receipt_id]  # last known summary


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace(f"schema: {SCHEMA_VERSION}", "schema: 99"), r"newer kaalwatch \(schema 99"),
        (lambda t: t.replace("state: new", "state: shipped"), r"jobs\[0\].state: 'shipped' is not one of"),
        (lambda t: t.replace("receipt_id:", "receipt:", 1), r"missing 'receipt_id'"),
        (lambda t: "just text\n", r"not a manifest"),
        (lambda t: "", r"not a manifest"),
        (lambda t: t.replace(f"schema: {SCHEMA_VERSION}", "schema: one"), r"schema: expected a whole number"),
    ],
)
def test_invalid_manifests_are_refused_not_rewritten(ws: Workspace, make_order: Callable[..., Order],
                                                     mutate: Callable[[str], str], message: str) -> None:
    order = make_order()
    folder = ws.add_order(order)
    text = mutate((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(text)
    with pytest.raises(ManifestError, match=message):
        ws.read_folder(folder)
    with pytest.raises(ManifestError), ws.edit(order.receipt_id):
        pass
    assert (folder / MANIFEST).read_text() == text


def test_unknown_top_level_keys_a_human_added_are_kept(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    (folder / MANIFEST).write_text((folder / MANIFEST).read_text() + "my_own_note: keep me\n")
    with ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "x")
    assert "my_own_note: keep me" in (folder / MANIFEST).read_text()


def test_renamed_and_moved_folders_are_still_found(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    target = ws.orders_dir / "2026" / "November" / "my favourite"
    target.parent.mkdir(parents=True)
    folder.rename(target)
    assert ws.folder_of(order.receipt_id) == target
    with ws.edit(order.receipt_id) as loaded:
        lifecycle.add_note(loaded, "still here")
    assert ws.jobs()[0].folder == "2026/November/my favourite"


def test_a_folder_moved_during_an_edit_gets_the_change_and_leaves_no_ghost(
        ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    folder = ws.add_order(order)
    target = ws.orders_dir / "archive" / folder.name
    target.parent.mkdir(parents=True)
    with ws.edit(order.receipt_id) as loaded:
        folder.rename(target)  # the artist tidies up while the watcher records a save
        lifecycle.add_note(loaded, "written after the move")
    assert not folder.exists(), "the old folder came back holding only a manifest"
    assert [n.text for n in ws.read_folder(target).notes] == ["written after the move"]
    assert ws.folder_of(order.receipt_id) == target


def test_index_rebuilds_from_manifests(ws: Workspace, make_order: Callable[..., Order]) -> None:
    orders = [make_order() for _ in range(3)]
    for order in orders:
        ws.add_order(order)
    ws.close()
    ws.index_path.unlink()
    fresh = Workspace(ws.settings)
    report = fresh.refresh_index()
    assert (report.scanned, report.parsed) == (3, 3)
    assert fresh.refresh_index().parsed == 0  # nothing changed: nothing parsed
    assert sorted(fresh.receipt_ids()) == sorted(o.receipt_id for o in orders)
    fresh.close()


def test_jobs_listing_filters_and_search(ws: Workspace, make_order: Callable[..., Order]) -> None:
    soon = make_order(buyer="Zed", days=1, titles=["Cat portrait"])
    later = make_order(buyer="Amy", days=9, titles=["Dog portrait"])
    for order in (later, soon):
        ws.add_order(order)
    with ws.edit(later.receipt_id) as loaded:
        lifecycle.hold(loaded, loaded.jobs[0].job_id)
    assert [r.receipt_id for r in ws.jobs()] == [soon.receipt_id, later.receipt_id]
    assert [r.receipt_id for r in ws.jobs(search="dog")] == [later.receipt_id]
    assert [r.receipt_id for r in ws.jobs(search=str(soon.receipt_id))] == [soon.receipt_id]
    assert [r.receipt_id for r in ws.jobs(states={JobState.ON_HOLD})] == [later.receipt_id]
    assert ws.state_counts()[JobState.ON_HOLD] == 1


def test_tool_path_refuses_escapes(ws: Workspace) -> None:
    for bad in ("../order.yaml", "/etc/passwd", "previews/../../orders/x", "secrets/../../.."):
        if bad.startswith("secrets"):
            continue
        with pytest.raises(NotFoundError):
            ws.tool_path(bad)


def test_missing_and_read_only_workspace_are_reported_at_start(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(settings)
    with pytest.raises(WorkspaceError, match=r"no workspace at .* \(run `kaalwatch init` first\)"):
        ws.check()
    ws.create()
    ws.check()

    def read_only(self: Path, data: bytes) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    # Root (as in CI) ignores permission bits, so the read-only filesystem is injected at the write.
    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(WorkspaceError, match=r"is not writable: Read-only file system \(remount it read-write"):
        ws.check()


def _add_notes(root: str, receipt_id: int, prefix: str, count: int) -> None:
    from kaalwatch.settings import Settings as S

    worker = Workspace(S(workspace=Path(root)))
    for n in range(count):
        with worker.edit(receipt_id) as order:
            lifecycle.add_note(order, f"{prefix}-{n}")
    worker.close()


def test_two_processes_changing_one_order_lose_nothing(ws: Workspace, make_order: Callable[..., Order]) -> None:
    order = make_order()
    ws.add_order(order)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_notes, args=(str(ws.root), order.receipt_id, name, 25)) for name in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    notes = [n.text for n in ws.load(order.receipt_id).notes]
    assert sorted(notes) == sorted([f"a-{n}" for n in range(25)] + [f"b-{n}" for n in range(25)])
    events = [e for e in ws.load(order.receipt_id).history if e.event == "note_added"]
    assert len(events) == 50


def test_adding_many_orders_scans_the_folder_tree_at_most_once(ws: Workspace, make_order: Callable[..., Order],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    scans = []
    real = ws.refresh_index

    def counting() -> object:
        scans.append(1)
        return real()

    monkeypatch.setattr(ws, "refresh_index", counting)
    for _ in range(20):
        ws.add_order(make_order(buyer="Same Buyer", titles=["Same listing"]))
    assert len(scans) <= 1  # a first import of N orders must not rescan orders/ N times
    assert len(ws.receipt_ids()) == 20


def test_an_order_added_by_another_process_is_found_without_a_rescan(ws: Workspace,
                                                                      make_order: Callable[..., Order]) -> None:
    ws.refresh_index()
    other = Workspace(ws.settings)
    order = make_order()
    other.add_order(order)
    other.close()
    assert ws.has_order(order.receipt_id)
    with pytest.raises(WorkspaceError, match="already exists"):
        ws.add_order(order)
