"""Issue 23: the watcher's work grows with what changed, not with what exists.

Counted, not timed: manifest parses (a spy on ``manifest_memory.parse_manifest`` that counts only the watcher's own
threads, so the test's polling does not count) and ingests (``Ingestor.ingests``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kaalwatch import lifecycle, manifest_memory
from kaalwatch.model import Order, Reference
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService, rescan_all
from tests.support.polling import wait_for
from tests.watch.helpers import png


class ParseSpy:
    """Counts manifest parses: all of them, or only the watcher threads' parses of one folder's manifest."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.count = 0
        self._lock = threading.Lock()

    def wrap(self, real: Callable[[str, str], Order]) -> Callable[[str, str], Order]:
        def counted(text: str, source: str) -> Order:
            if self.folder is None or (threading.current_thread().name.startswith("kaalwatch")
                                       and Path(source).parent == self.folder):
                with self._lock:
                    self.count += 1
            return real(text, source)
        return counted


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path | None], ParseSpy]]:
    def install(folder: Path | None) -> ParseSpy:
        spy = ParseSpy(folder)
        monkeypatch.setattr(manifest_memory, "parse_manifest", spy.wrap(manifest_memory.parse_manifest))
        return spy
    yield install


def synced_order(ws: Workspace, order_at: Callable[..., tuple[Order, Path]], versions: int = 0) -> tuple[Order, Path]:
    """An order as sync leaves it (buyer references downloaded and recorded), with ``versions`` saves."""
    order, folder = order_at()
    refs = folder / "references"
    refs.mkdir(exist_ok=True)
    (refs / "buyer-photo.jpg").write_bytes(png(1))
    with ws.edit(order.receipt_id) as o:
        lifecycle.add_reference(o, Reference(name="buyer-photo.jpg", source="buyer", sha256="0" * 64, size=1), "sync")
    for n in range(versions):
        (folder / f"portrait-{n:02d}.png").write_bytes(png(n, (64, 48)))
    return order, folder


def test_a_second_rescan_of_an_unchanged_workspace_changes_nothing_and_parses_nothing(
        ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]],
        parses: Callable[[Path | None], ParseSpy]) -> None:
    for _ in range(5):
        synced_order(ws, order_at, versions=2)
    first = rescan_all(ws, settings, max_wait=30)
    assert first.folders == 5 and first.versions == 10
    rescan_all(ws, settings, max_wait=30)  # the versions written by the first changed the manifests once
    spy = parses(None)
    steady = rescan_all(ws, settings, max_wait=30)
    assert (steady.checked, steady.queued, spy.count) == (0, 0, 0), steady.summary()


def test_after_sync_two_rescans_the_second_reports_nothing_changed(
        ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]],
        parses: Callable[[Path | None], ParseSpy]) -> None:
    """The issue's reproduction: sync (references recorded), then `kaalwatch rescan` twice."""
    for _ in range(4):
        synced_order(ws, order_at)
    assert rescan_all(ws, settings, max_wait=30).checked == 4
    spy = parses(None)
    second = rescan_all(ws, settings, max_wait=30)
    assert "4 folders scanned (0 changed)" in second.summary() and spy.count == 0


def handled(service: WatchService, ws: Workspace, marker_order: Order, marker_folder: Path, n: int) -> None:
    """Save into another order and wait for its version: the queue is FIFO, so every event before it (the
    manifest write's own folder event included) has been handled by then. Costs that order one ingest."""
    (marker_folder / f"marker-{n}.png").write_bytes(png(500 + n, (64, 48)))
    wait_for(lambda: len(ws.load(marker_order.receipt_id).jobs[0].versions) == n)
    wait_for(lambda: service.health()["queue_length"] == 0)


def test_one_save_in_a_folder_of_fifty_versions_costs_at_most_two_ingests_and_three_parses(
        ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]],
        start_service: Callable[..., WatchService], parses: Callable[[Path | None], ParseSpy]) -> None:
    order, folder = synced_order(ws, order_at, versions=50)
    marker_order, marker_folder = order_at()
    rescan_all(ws, settings, max_wait=60)
    rescan_all(ws, settings, max_wait=60)
    service = start_service()
    handled(service, ws, marker_order, marker_folder, 1)
    spy = parses(folder)
    before = service.health()["ingests"]
    (folder / "portrait-new.png").write_bytes(png(99, (64, 48)))
    wait_for(lambda: len(ws.load(order.receipt_id).jobs[0].versions) == 51)
    handled(service, ws, marker_order, marker_folder, 2)
    save_ingests = service.health()["ingests"] - before - 1  # less the marker's
    assert save_ingests <= 2 and spy.count <= 3, (save_ingests, spy.count)

    ingests, parsed = service.health()["ingests"], spy.count
    with ws.edit(order.receipt_id) as o:  # what a page action does: one manifest write
        lifecycle.add_note(o, "the buyer wants warmer light", None, "review")
    (folder / "notes.txt").write_text("not artwork")  # and a stray non-artwork file
    handled(service, ws, marker_order, marker_folder, 3)
    assert service.health()["ingests"] - ingests - 1 == 0 and spy.count - parsed == 0


def test_forgetting_an_order_makes_the_next_rescan_judge_it_again(
        ws: Workspace, settings: Settings, order_at: Callable[..., tuple[Order, Path]]) -> None:
    """The seen-store's forget API (for code that deletes files, such as retention) is only a cache reset."""
    from kaalwatch.watch.seen import SeenStore

    order, _folder = synced_order(ws, order_at, versions=1)
    rescan_all(ws, settings, max_wait=30)
    rescan_all(ws, settings, max_wait=30)
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    try:
        seen.forget_file(order.receipt_id, "portrait-00.png")
        assert "portrait-00.png" not in seen.files_of(order.receipt_id)
        seen.forget_order(order.receipt_id)
        assert seen.files_of(order.receipt_id) == {} and seen.all_folders() == {}
    finally:
        seen.close()
    again = rescan_all(ws, settings, max_wait=30)
    assert again.checked == 1 and again.queued == 2 and again.versions == 0  # judged again, nothing new
