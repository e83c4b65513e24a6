"""Benchmark case "viewer": what the owner waits for on the job page, in a real Chromium.

- ``save → visible``: a job page is open; an artwork save (a 2000x1500 PNG, renamed into the order folder as
  an art tool's save ends) becomes a version; measured from the end of the save until the open page's viewer
  shows it, with no reload. Target: quiet period + preview time (measured in the same run) + 0.5 s.
- ``first paint, 8000² PNG``: opening the job page of a version whose original is 8000x8000, until every
  tile the viewer needs at "fit" is drawn. The daemon builds the overview tiles of each new save ahead of
  the first look (``views.tiles.warm``), so that is what is measured against the 1 s target; the same with a
  cold tile cache (the first look within 5 s of a save, before the daemon got to it) is reported beside it.

The watcher runs with its real ``PreviewPool`` (worker processes); the page is served by waitress.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench.case_preview import DATA  # noqa: E402
from bench.case_watch import _png, _preview_time  # noqa: E402
from bench.harness import row, stats  # noqa: E402
from bench.inputs import Input, make  # noqa: E402
from kaalwatch.imaging import PreviewPool  # noqa: E402
from kaalwatch.model import Job, Order  # noqa: E402
from kaalwatch.settings import Settings, load_settings  # noqa: E402
from kaalwatch.store import Workspace  # noqa: E402
from kaalwatch.watch import WatchService  # noqa: E402

QUIET = 0.5
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
PAINTED = "() => { const v = document.getElementById('viewer'); return v && v.dataset.pending === '0'; }"


def _settings(root: Path) -> Settings:
    base = load_settings(env={}, use_default_path=False)
    return dataclasses.replace(
        base, workspace=root / "ws",
        watcher=dataclasses.replace(base.watcher, quiet_seconds=QUIET, rescan_minutes=600),
        review=dataclasses.replace(base.review, require_password=False, port=0))


def _order(ws: Workspace, receipt_id: int) -> tuple[Order, Path]:
    order = Order(receipt_id=receipt_id, etsy_status="paid", buyer_name="Bench Buyer", ordered_at=datetime.now(UTC),
                  ship_by=None, jobs=[Job(job_id=str(receipt_id * 10), listing_id=1, title="Portrait",
                                          workflow="default")])
    return order, ws.add_order(order, actor="bench")


def _save(folder: Path, name: str, data: bytes) -> float:
    temp = folder / f".{name}.tmp"
    temp.write_bytes(data)
    temp.replace(folder / name)
    return time.perf_counter()


def _wait_version(ws: Workspace, receipt_id: int, number: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        versions = ws.load(receipt_id).jobs[0].versions
        if len(versions) >= number and versions[number - 1].preview:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {receipt_id}: no version {number} with a preview")
        time.sleep(0.05)


def _visible(page: Any, number: int) -> None:
    page.wait_for_function(f"() => document.getElementById('viewer')?.dataset.version === '{number}'",
                           polling="raf", timeout=30_000)


def run(quick: bool) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    from kaalwatch.imaging import tiles
    from review_app import create_app
    from review_app.server import ReviewServer
    from review_app.views.tiles import cache_dir, warm

    saves = 3 if quick else 20
    tmp = Path(tempfile.mkdtemp(prefix="kaalwatch-bench-viewer-"))
    settings = _settings(tmp)
    ws = Workspace(settings)
    ws.create()
    pool = PreviewPool(settings.watcher.workers or None)
    watcher = WatchService(ws, settings, pool)
    rows: list[dict[str, Any]] = []
    try:
        live, folder = _order(ws, 1)
        preview_s = _preview_time(ws, settings, live, _png(7), tmp)
        _, big_folder = _order(ws, 2)
        watcher.start()
        edge = 2000 if quick else 8000
        source = make(Input(f"{edge}² RGB PNG", "png", (edge, edge), seed=2), DATA / ("quick" if quick else "full"))
        shutil.copy(source, big_folder / ".art.png.tmp")
        (big_folder / ".art.png.tmp").replace(big_folder / "art.png")
        _wait_version(ws, 2, 1)
        _save(folder, "portrait.png", _png(1))
        _wait_version(ws, 1, 1)
        app = create_app(settings, ws)
        with ReviewServer(app, "127.0.0.1", 0) as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{server.url}/jobs/1/10")
            _visible(page, 1)
            latencies = []
            for number in range(2, saves + 2):
                ended = _save(folder, "portrait.png", _png(number * 37))
                _visible(page, number)
                latencies.append(time.perf_counter() - ended)
            s = stats(latencies)
            target = QUIET + preview_s + 0.5
            rows.append(row("viewer", "save → visible on an open page", "median latency", s["median"], "s",
                            target=target, minimum=s["min"], maximum=s["max"], p95_s=s["p95"], saves=saves,
                            preview_s=round(preview_s, 3), quiet_s=QUIET))
            rows.append(row("viewer", "save → visible on an open page", "p95 latency", s["p95"], "s", target=target))

            version = ws.load(2).jobs[0].versions[0]
            paints: dict[str, list[float]] = {"warm": [], "cold": []}
            for _ in range(1 if quick else 7):  # seven of each, interleaved, like every timed row
                for kind in ("cold", "warm"):
                    cache = cache_dir(ws, 2, "20", version)
                    shutil.rmtree(cache, ignore_errors=True)
                    if kind == "warm":
                        warm(ws, settings, ws.load(2))  # what the daemon does within 5 s of the save
                    fresh = browser.new_page(viewport={"width": 1280, "height": 900})
                    started = time.perf_counter()
                    fresh.goto(f"{server.url}/jobs/2/20")
                    fresh.wait_for_function(PAINTED, polling="raf", timeout=60_000)
                    paints[kind].append(time.perf_counter() - started)
                    fresh.close()
            browser.close()
        side = f"{version.width}² PNG"
        levels = tiles.plan(version.width or 1, version.height or 1).levels
        warm_s = statistics.median(paints["warm"])
        rows.append(row("viewer", f"first paint, {side} (overview built by the daemon)", "page open → drawn",
                        warm_s, "s", target=1.0, minimum=min(paints["warm"]), maximum=max(paints["warm"]),
                        levels=levels))
        cold_s = statistics.median(paints["cold"])
        rows.append(row("viewer", f"first paint, {side} (cold tile cache)", "page open → drawn", cold_s, "s",
                        minimum=min(paints["cold"]), maximum=max(paints["cold"])))
    finally:
        watcher.stop(timeout=10)
        pool.shutdown(wait=True)
        ws.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


if __name__ == "__main__":
    from bench.harness import table

    print(table(run("--quick" in sys.argv)))
