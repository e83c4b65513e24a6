"""Benchmark case "watchwork": the watcher's work grows with what changed, not with what exists (issue 23).

``run(quick)`` returns rows for the harness:

- ``rescan_unchanged_10000``: a full rescan of 10,000 order folders with realistic content (2 references,
  5 versions with previews and thumbnails each) when nothing changed: seconds (the median of ``RUNS``
  rescans with their minimum and maximum, target < 2 s) and manifest parses (the most in any rescan,
  target 0);
- ``one_save_50_versions``: ingests (target <= 2) and parses of that order's manifest (target <= 3) caused
  by one save into a folder that already holds 50 versions, through the running ``WatchService``;
- ``one_page_action``: ingests caused by one page action (a note: one manifest write), target 0.

The workspace is written directly (manifests, files, previews) and the seen-store is filled as a previous
run would have left it, so the set-up takes seconds instead of ingesting 50,000 files; the first measured
rescan then verifies every folder once (parsing each manifest) before the steady state is timed.
``quick=True`` uses 200 folders and one rescan; its numbers mean little.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from kaalwatch import lifecycle, manifest_memory  # noqa: E402
from kaalwatch.imaging import PreviewPool  # noqa: E402
from kaalwatch.manifest import dump_manifest  # noqa: E402
from kaalwatch.model import Job, Order, Reference, Version  # noqa: E402
from kaalwatch.settings import Settings, load_settings  # noqa: E402
from kaalwatch.store import MANIFEST, Workspace  # noqa: E402
from kaalwatch.watch import WatchService, rescan_all  # noqa: E402
from kaalwatch.watch.ingest import watermark_for  # noqa: E402
from kaalwatch.watch.seen import SeenStore  # noqa: E402

#: Timed rescans per run (issue 19: every timed row is the median of at least 7 runs, with its spread).
RUNS = 7


def _png(label: str) -> bytes:
    """A tiny complete PNG, unique by its text chunk: the unchanged rescan never reads artwork, only stats it."""
    info = PngInfo()
    info.add_text("bench", label)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 120, 40)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _result(name: str, metric: str, value: float, unit: str, target: float | None, **extra: Any) -> dict[str, Any]:
    return {"case": "watchwork", "name": name, "metric": metric, "value": value, "unit": unit, "target": target,
            "ok": None if target is None else value <= target, "min": extra.pop("min", None),
            "max": extra.pop("max", None), "detail": extra}


def _settings(root: Path) -> Settings:
    base = load_settings(env={}, use_default_path=False)
    return dataclasses.replace(base, workspace=root / "ws",
                               watcher=dataclasses.replace(base.watcher, quiet_seconds=0.5, rescan_minutes=600))


def _order(ws: Workspace, settings: Settings, seen: SeenStore, receipt_id: int, versions: int) -> Path:
    """One order folder as a running shop has it, its files already judged in the seen-store."""
    job = Job(job_id=str(receipt_id * 10), listing_id=1, title="Portrait", workflow="default")
    order = Order(receipt_id=receipt_id, etsy_status="paid", buyer_name="Bench Buyer", ordered_at=datetime.now(UTC),
                  ship_by=None, jobs=[job])
    folder = ws.orders_dir / f"{receipt_id} Bench Buyer - Portrait"
    refs = folder / "references"
    refs.mkdir(parents=True)
    files: list[tuple[str, str]] = []
    for n in range(2):
        data = _png(f"ref{receipt_id}-{n}")
        (refs / f"photo-{n}.jpg").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        order.references.append(Reference(name=f"photo-{n}.jpg", source="buyer", sha256=sha, size=len(data)))
        files.append((f"references/photo-{n}.jpg", sha))
    for number in range(1, versions + 1):
        data = _png(f"v{receipt_id}-{number}")
        name = f"portrait-{number:02d}.png"
        (folder / name).write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        copy = ws.version_copy_path(receipt_id, job.job_id, number, sha, ".png")
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        _spec, _text, key = watermark_for(settings, order, job, number)
        preview, thumb = ws.preview_paths(receipt_id, job.job_id, number, key)
        preview.parent.mkdir(parents=True, exist_ok=True)
        preview.write_bytes(b"jpeg")
        thumb.write_bytes(b"jpeg")
        job.versions.append(Version(number=number, source_name=name, sha256=sha, size=len(data),
                                    saved_at=datetime.now(UTC), copy=ws.relative_to_tool(copy), kind="raster",
                                    preview=ws.relative_to_tool(preview), thumb=ws.relative_to_tool(thumb),
                                    preview_key=key, width=1, height=1))
        files.append((name, sha))
    # Written directly (the caller refreshes the index once): 10,000 locked, fsynced manifest writes would
    # make the set-up take longer than the whole benchmark may.
    (folder / MANIFEST).write_text(dump_manifest(order), encoding="utf-8")
    rows = []
    for rel, sha in files:
        st = (folder / rel).stat()
        rows.append((receipt_id, rel, st.st_size, st.st_mtime_ns, sha))
    seen.put_files(rows)
    return folder


class _Parses:
    """Counts manifest parses (all, or the watcher threads' parses of one folder's manifest)."""

    def __init__(self) -> None:
        self.count = 0
        self.folder: Path | None = None
        self._real: Callable[[str, str], Order] = manifest_memory.parse_manifest
        self._lock = threading.Lock()

    def __enter__(self) -> _Parses:
        def counted(text: str, source: str) -> Order:
            if self.folder is None or (threading.current_thread().name.startswith("kaalwatch")
                                       and Path(source).parent == self.folder):
                with self._lock:
                    self.count += 1
            return self._real(text, source)
        manifest_memory.parse_manifest = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        manifest_memory.parse_manifest = self._real  # type: ignore[assignment]


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the watcher did not finish in time")
        time.sleep(0.02)


def _rescans(root: Path, folders: int, runs: int) -> list[dict[str, Any]]:
    settings = _settings(root)
    ws = Workspace(settings)
    ws.create()
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    for receipt_id in range(1, folders + 1):
        _order(ws, settings, seen, receipt_id, 5)
    seen.close()
    ws.refresh_index()
    rescan_all(ws, settings)  # verifies every folder once (parses each manifest), as after an upgrade
    times, parsed, checked = [], [], []
    for _ in range(runs):
        with _Parses() as parses:
            report = rescan_all(ws, settings)
        times.append(report.seconds)
        parsed.append(parses.count)
        checked.append(report.checked)
    ws.close()
    return [
        _result(f"rescan_unchanged_{folders}", "elapsed", statistics.median(times), "s", 2.0 * folders / 10_000,
                min=min(times), max=max(times), runs=runs, folders=report.folders, changed=max(checked),
                files_each=7),
        _result(f"rescan_unchanged_{folders}", "manifest parses", float(max(parsed)), "parses", 0.0),
    ]


def _events(root: Path) -> list[dict[str, Any]]:
    settings = _settings(root)
    ws = Workspace(settings)
    ws.create()
    seen = SeenStore(ws.tool_dir / "watch.sqlite")
    folder = _order(ws, settings, seen, 1, 50)
    marker = _order(ws, settings, seen, 2, 0)
    seen.close()
    ws.refresh_index()
    rescan_all(ws, settings)
    pool = PreviewPool(1)
    service = WatchService(ws, settings, pool)
    service.start()

    def barrier(n: int) -> None:
        """A save into the other order: the queue is FIFO, so every earlier event was handled once it is in."""
        (marker / f"marker-{n}.png").write_bytes(_png(f"marker{n}"))
        _wait(lambda: len(ws.load(2).jobs[0].versions) == n and service.health()["queue_length"] == 0)

    try:
        barrier(1)
        with _Parses() as parses:
            parses.folder = folder
            before = service.health()["ingests"]
            (folder / "portrait-51.png").write_bytes(_png("the new save"))
            _wait(lambda: len(ws.load(1).jobs[0].versions) == 51)
            barrier(2)
            save_ingests = service.health()["ingests"] - before - 1  # less the barrier's own
            save_parses = parses.count
            before = service.health()["ingests"]
            with ws.edit(1) as order:  # what every page action does: one manifest write
                lifecycle.add_note(order, "bench note", None, "review")
            barrier(3)
            page_ingests = service.health()["ingests"] - before - 1
    finally:
        service.stop()
        pool.shutdown()
        ws.close()
    return [
        _result("one_save_50_versions", "ingests", float(save_ingests), "ingests", 2.0),
        _result("one_save_50_versions", "manifest parses", float(save_parses), "parses", 3.0),
        _result("one_page_action", "ingests", float(page_ingests), "ingests", 0.0),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="kaalwatch-bench-watchwork-") as tmp_name:
        tmp = Path(tmp_name)
        rows = _rescans(tmp / "rescan", 200 if quick else 10_000, 1 if quick else RUNS)
        rows += _events(tmp / "events")
    return rows


if __name__ == "__main__":
    import json

    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
