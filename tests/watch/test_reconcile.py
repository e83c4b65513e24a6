"""Reconcile: saves made while nobody watched, references dropped by hand, previews, crash safety, idempotence."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from kaalwatch import lifecycle, private
from kaalwatch.imaging import render_previews
from kaalwatch.model import JobState
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService, rebuild_previews, rescan_all, rescan_order
from kaalwatch.watch.ingest import Ingestor, clean_staging, stage_copy
from kaalwatch.watch.reconcile import RescanReport, ingest_when_stable
from kaalwatch.watch.seen import SeenStore
from tests.support.polling import wait_for
from tests.watch.helpers import png, psd


def old(path: Path) -> Path:
    """Make a file look saved a minute ago (a save made while the daemon was down)."""
    t = path.stat().st_mtime_ns - 60 * 10**9
    os.utime(path, ns=(t, t))
    return path


def test_saves_made_while_stopped_are_found_at_start(ws: Workspace, order_at: Callable,
                                                     start_service: Callable[..., WatchService]) -> None:
    order, folder = order_at()
    (folder / "offline.png").write_bytes(png(1))
    old(folder / "offline.png")
    service = start_service()
    wait_for(lambda: ws.load(order.receipt_id).jobs[0].versions)
    assert ws.load(order.receipt_id).jobs[0].versions[0].source_name == "offline.png"
    assert service.health()["alive"]


def test_rescan_order_is_idempotent_and_writes_nothing_when_nothing_changed(ws: Workspace, settings: Settings,
                                                                             order_at: Callable) -> None:
    order, folder = order_at()
    (folder / "a.png").write_bytes(png(2))
    (folder / "notes.txt").write_text("not artwork")
    old(folder / "a.png")
    report = rescan_order(ws, settings, order.receipt_id)
    assert report.versions == 1, report.summary()
    before = (folder / "order.yaml").stat().st_mtime_ns
    history = len(ws.load(order.receipt_id).history)
    again = rescan_all(ws, settings)
    again2 = rescan_all(ws, settings)
    assert again.versions == again2.versions == 0
    assert again2.checked == 0  # verified clean: not even parsed
    assert (folder / "order.yaml").stat().st_mtime_ns == before
    assert len(ws.load(order.receipt_id).history) == history


def test_reference_dropped_by_hand_is_recorded_with_a_thumbnail(ws: Workspace, settings: Settings,
                                                                order_at: Callable) -> None:
    order, folder = order_at()
    with ws.edit(order.receipt_id) as o:
        lifecycle.await_references(o, o.jobs[0].job_id)
    (folder / "references" / "dog.jpg").write_bytes(png(3))
    old(folder / "references" / "dog.jpg")
    report = rescan_order(ws, settings, order.receipt_id)
    assert report.references == 1
    loaded = ws.load(order.receipt_id)
    (ref,) = loaded.references
    assert ref.source == "artist" and ref.name == "dog.jpg" and ref.thumb and ws.tool_path(ref.thumb).is_file()
    assert loaded.jobs[0].state is JobState.NEW
    assert loaded.jobs[0].versions == []  # a reference is never a version
    assert rescan_order(ws, settings, order.receipt_id).references == 0


def test_crash_between_copy_and_manifest_neither_loses_nor_doubles(ws: Workspace, settings: Settings,
                                                                   order_at: Callable) -> None:
    order, folder = order_at()
    src = old(_write(folder / "a.png", png(4)))
    job = order.jobs[0].job_id
    # What a SIGKILL after the copy and before the manifest write leaves behind: the copy, and a staging file.
    staged, sha, _, _ = stage_copy(src, ws.versions_dir / str(order.receipt_id) / job)
    final = ws.version_copy_path(order.receipt_id, job, 1, sha, ".png")
    os.replace(staged, final)
    stage_copy(src, ws.versions_dir / str(order.receipt_id) / job)
    for _ in range(2):
        rescan_order(ws, settings, order.receipt_id)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert v.sha256 == sha and ws.tool_path(v.copy).read_bytes() == png(4)


def test_same_bytes_under_a_new_name_across_rescans(ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    old(_write(folder / "v1.png", png(5)))
    rescan_order(ws, settings, order.receipt_id)
    old(_write(folder / "v1 renamed.png", png(5)))
    rescan_order(ws, settings, order.receipt_id)
    assert [v.source_name for v in ws.load(order.receipt_id).jobs[0].versions] == ["v1.png"]


def test_changed_watermark_template_regenerates_previews(ws: Workspace, settings: Settings,
                                                         order_at: Callable) -> None:
    order, folder = order_at()
    old(_write(folder / "a.png", png(6)))
    rescan_order(ws, settings, order.receipt_id)
    v1 = ws.load(order.receipt_id).jobs[0].versions[0]
    changed = dataclasses.replace(settings, watermark=dataclasses.replace(settings.watermark,
                                                                          template="DRAFT {shop} v{version}"))
    rendered, errors = rebuild_previews(ws, changed)
    v2 = ws.load(order.receipt_id).jobs[0].versions[0]
    assert rendered == 1 and not errors
    assert v2.preview_key != v1.preview_key and ws.tool_path(v2.preview).is_file()
    assert not (ws.tool_dir / v1.preview).exists()  # the stale preview is gone
    assert rebuild_previews(ws, changed) == (0, [])  # up to date now
    assert rebuild_previews(ws, changed, rebuild=True)[0] == 1


def test_deleted_preview_is_rendered_again_by_rescan(ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    old(_write(folder / "a.png", png(7)))
    rescan_all(ws, settings)
    v = ws.load(order.receipt_id).jobs[0].versions[0]
    ws.tool_path(v.preview).unlink()
    report = rescan_all(ws, settings)
    assert report.previews == 1 and ws.tool_path(ws.load(order.receipt_id).jobs[0].versions[0].preview).is_file()


def test_affinity_file_without_export_is_a_version_with_a_note(ws: Workspace, settings: Settings,
                                                               order_at: Callable) -> None:
    order, folder = order_at()
    old(_write(folder / "portrait.afphoto", b"Affinity\x00" * 100))
    rescan_order(ws, settings, order.receipt_id)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert v.preview is None and v.note and "export" in v.note and v.error is None


def test_layered_source_and_export_pair_on_rescan(ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    old(_write(folder / "portrait.psd", psd(8)))
    old(_write(folder / "portrait.png", png(8)))
    rescan_order(ws, settings, order.receipt_id)
    rescan_order(ws, settings, order.receipt_id)
    (v,) = ws.load(order.receipt_id).jobs[0].versions
    assert v.source_name == "portrait.png" and v.paired_with == "portrait.psd"


def test_broken_manifest_is_reported_and_others_still_scanned(ws: Workspace, settings: Settings,
                                                              order_at: Callable) -> None:
    _order, folder = order_at()
    _other, other_folder = order_at()
    (other_folder / "order.yaml").write_text("schema: [unclosed")
    old(_write(folder / "a.png", png(9)))
    report = rescan_all(ws, settings)
    assert report.versions == 1 and any("order.yaml" in e for e in report.errors)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_misplaced_warning_clears_after_the_file_is_moved_and_rescanned(ws: Workspace, settings: Settings,
                                                                        order_at: Callable) -> None:
    order, folder = order_at(jobs=2)
    (folder / "stray.png").write_bytes(png(40))
    stray = old(folder / "stray.png")
    rescan_order(ws, settings, order.receipt_id)
    loaded = ws.load(order.receipt_id)
    assert "stray.png" in loaded.errors["watcher"]
    assert any("stray.png" in message for row in ws.jobs() for _, message in row.errors)  # list and status
    item = folder / loaded.jobs[0].folder
    stray.rename(item / "stray.png")  # the artist moves it into the first item's folder
    rescan_order(ws, settings, order.receipt_id)
    loaded = ws.load(order.receipt_id)
    assert loaded.errors == {} and loaded.jobs[0].versions[0].source_name == "stray.png"
    assert not [w for row in ws.jobs() for w in row.errors]
    assert [e.details["source"] for e in loaded.history if e.event == "error_cleared"] == ["watcher"]


def test_clean_staging_removes_what_a_killed_process_left_and_nothing_recent(ws: Workspace) -> None:
    folder = ws.previews_dir / "1" / "10"
    folder.mkdir(parents=True)
    left = [folder / ".staging-ab12.jpg", folder / ".p.jpg.kw-tmp-1a2b3c4d", folder / ".p.jpg.x9y8.tmp"]
    keep = [folder / "3-abc.jpg", folder / ".staging-recent.jpg"]
    for path in left + keep:
        path.write_bytes(b"x")
    hour_ago = os.stat(folder).st_mtime - 7200
    for path in [*left, keep[0]]:
        os.utime(path, (hour_ago, hour_ago))
    assert clean_staging(ws) == len(left)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in keep)


def test_stage_copy_writes_a_private_read_only_copy_and_leaves_no_temp_behind(tmp_path: Path) -> None:
    src = tmp_path / "portrait.png"
    src.write_bytes(png(1))
    staged, sha, size, before = stage_copy(src, tmp_path / "staging")
    assert staged.read_bytes() == src.read_bytes() and size == before.st_size == src.stat().st_size
    assert len(sha) == 64 and os.stat(staged).st_mode & 0o777 == private.read_only_mode()
    assert [p.name for p in staged.parent.iterdir()] == [staged.name]


def test_a_rescan_waits_for_a_file_the_watcher_is_ingesting_instead_of_dropping_it(
        ws: Workspace, settings: Settings, order_at: Callable) -> None:
    # The watcher's own ingest of the file may fail (a full disk): the on-demand rescan must still look at it.
    order, folder = order_at()
    (folder / "portrait.png").write_bytes(png(5))
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    try:
        ingestor = Ingestor(ws, settings, render_previews, seen)
        asked: list[Path] = []

        def busy(path: Path) -> bool:
            asked.append(path)
            return len(asked) < 3  # in flight twice, then the watcher's attempt is over

        report = RescanReport()
        ingest_when_stable(ingestor, [(folder / "portrait.png", 0)], settings, report, in_flight=busy)
    finally:
        seen.close()
    assert len(asked) == 3 and report.versions == 1 and report.pending == 0
    assert [v.number for v in ws.load(order.receipt_id).jobs[0].versions] == [1]
