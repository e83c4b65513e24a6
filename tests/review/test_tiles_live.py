"""The viewer's tile endpoint, the live page's stamp and the header's counts, through the Flask client."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import threading
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from PIL import Image

from kaalwatch import lifecycle
from kaalwatch.cli import cli as cli_main
from kaalwatch.imaging import tiles
from kaalwatch.model import Order, Version, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.views.tiles import cache_dir
from tests.review.conftest import login, post, store_password


def _big_version(ws: Workspace, order: Order, size: tuple[int, int], seed: int = 1) -> tuple[Version, np.ndarray]:
    """A version whose immutable copy is a ``size`` PNG of noise (every pixel differs from its neighbours)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    job_id = order.jobs[0].job_id
    with ws.edit(order.receipt_id) as o:
        number = len(o.jobs[0].versions) + 1
        copy = ws.version_copy_path(order.receipt_id, job_id, number, f"{seed:064x}", ".png")
        copy.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(copy, "PNG", compress_level=1)
        version = Version(number=number, source_name="big.png", sha256=f"{seed:064x}", size=copy.stat().st_size,
                          saved_at=utcnow(), copy=ws.relative_to_tool(copy))
        lifecycle.add_version(o, job_id, version, actor="watcher")
        previous = o.jobs[0].versions[0]
        lifecycle.update_version(o, job_id, number, actor="watcher", preview=previous.preview, thumb=previous.thumb,
                                 width=size[0], height=size[1], kind="png")
    return ws.load(order.receipt_id).jobs[0].version(number), pixels  # type: ignore[return-value]


def test_pyramid_levels_halve_down_to_one_tile() -> None:
    p = tiles.plan(8000, 6000)
    assert p.levels == 5 and p.size(0) == (8000, 6000) and p.size(4) == (500, 375) and p.grid(4) == (1, 1)
    assert p.grid(0) == (16, 12) and p.overview_level() == 2 and max(p.size(2)) <= tiles.OVERVIEW_EDGE
    assert tiles.plan(300, 200).levels == 1
    with pytest.raises(ValueError):
        tiles.plan(0, 10)


def test_level_zero_tiles_are_the_originals_pixels(client: FlaskClient, ws: Workspace, order: Order) -> None:
    version, pixels = _big_version(ws, order, (1300, 700))
    base = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/{version.number}/tile"
    response = client.get(f"{base}/0/1/1")
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert "immutable" in response.headers["Cache-Control"] and "private" in response.headers["Cache-Control"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    tile = np.asarray(Image.open(io.BytesIO(response.data)).convert("RGB"), dtype=np.int16)
    assert tile.shape == (188, 512, 3)  # the bottom row is what is left of 700 px
    error = np.abs(tile - pixels[512:700, 512:1024].astype(np.int16)).mean()
    assert error < 8, error  # pure noise is JPEG's worst case; painted art comes out within ~1 level
    edge = Image.open(io.BytesIO(client.get(f"{base}/0/2/0").data))
    assert edge.size == (1300 - 1024, 512)
    top = Image.open(io.BytesIO(client.get(f"{base}/2/0/0").data))
    assert top.size == (325, 175)  # 1300/4, 700/4: every coarser level came from the same decode
    cache = cache_dir(ws, order.receipt_id, order.jobs[0].job_id, version)
    assert sorted(p.name for p in cache.iterdir()) == ["0", "1", "2"]


@pytest.mark.parametrize("suffix", ["9/0/0", "0/9/0", "0/0/99999", "-1/0/0", "0/0/0/../../../secrets",
                                    "0/0/0.jpg"])
def test_tiles_outside_the_grid_or_odd_paths_are_404(client: FlaskClient, ws: Workspace, order: Order,
                                                     suffix: str) -> None:
    version, _ = _big_version(ws, order, (600, 600))
    assert client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/{version.number}/tile/{suffix}"
                      ).status_code == 404
    assert client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/99/tile/0/0/0").status_code == 404
    assert client.get(f"/jobs/{order.receipt_id}/..%2F..%2Fsecrets/v/1/tile/0/0/0").status_code == 404


def test_tiles_need_a_login(anon: FlaskClient, order: Order) -> None:
    response = anon.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/1/tile/0/0/0")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_original_over_the_pixel_cap_is_refused_cleanly(settings: Settings, ws: Workspace, order: Order) -> None:
    version, _ = _big_version(ws, order, (1500, 1500))
    capped = dataclasses.replace(settings, preview=dataclasses.replace(settings.preview, max_megapixels=1.0))
    store_password(ws)
    client = create_app(capped, ws, {"TESTING": True}).test_client()
    login(client)
    response = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/{version.number}/tile/0/0/0")
    assert response.status_code == 404 and "pixels" in response.get_data(as_text=True)


def test_concurrent_first_looks_never_queue_behind_a_build(client: FlaskClient, ws: Workspace, order: Order) -> None:
    version, _ = _big_version(ws, order, (2100, 1500))
    base = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/v/{version.number}/tile"
    urls = [f"{base}/{z}/0/0" for z in (0, 1, 2, 3)] * 3
    cache = cache_dir(ws, order.receipt_id, order.jobs[0].job_id, version)
    results: list[int] = []
    lock = threading.Lock()

    session = client.get_cookie("kaalwatch_session")
    assert session is not None

    def fetch_logged_in(url: str) -> None:
        own = client.application.test_client()  # one client per thread, sharing the logged-in session
        own.set_cookie("kaalwatch_session", session.value)
        response = own.get(url)
        with lock:
            results.append(response.status_code)

    threads = [threading.Thread(target=fetch_logged_in, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # While one request builds, the others are answered at once (503, ask again) instead of waiting in line.
    assert set(results) <= {200, 503} and 200 in results, results
    assert all(client.get(url).status_code == 200 for url in urls)
    assert sorted(p.name for p in cache.iterdir()) == ["0", "1", "2", "3"]  # no leftover temporary folders


def test_live_stamp_is_conditional_and_moves_with_the_order(client: FlaskClient, ws: Workspace,
                                                           order: Order) -> None:
    first = client.get(f"/live?order={order.receipt_id}")
    assert first.status_code == 200 and first.json["poll_ms"] > 0  # type: ignore[index]
    etag = first.headers["ETag"]
    same = client.get(f"/live?order={order.receipt_id}", headers={"If-None-Match": etag})
    assert same.status_code == 304 and not same.data
    with ws.edit(order.receipt_id) as o:
        lifecycle.add_note(o, "from another tab", o.jobs[0].job_id)
    moved = client.get(f"/live?order={order.receipt_id}", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["ETag"] != etag
    page = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}").get_data(as_text=True)
    stamp = re.search(r'name="kaalwatch-live" content="/live\?order=\d+" data-stamp="(\w+)"', page)
    assert stamp and f'"{stamp.group(1)}"' == moved.headers["ETag"]  # the page knows the state it shows
    assert client.get("/live?order=123456789").status_code == 404


def test_list_stamp_moves_with_any_order(client: FlaskClient, ws: Workspace, order: Order,
                                         make_order: Callable[..., Order]) -> None:
    etag = client.get("/live").headers["ETag"]
    assert client.get("/live", headers={"If-None-Match": etag}).status_code == 304
    ws.add_order(make_order())
    assert client.get("/live", headers={"If-None-Match": etag}).status_code == 200


def test_live_needs_a_login(anon: FlaskClient) -> None:
    assert anon.get("/live").status_code == 302


def test_header_counts_are_the_numbers_status_prints(
        client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    for days in (-2, 1, 1, 9):
        ws.add_order(make_order(days=days))
    ws.write_state("health", {"pid": 1, "running": True, "updated_at": utcnow().isoformat(), "watcher_alive": True,
                              "queue_length": 3})
    page = client.get("/").get_data(as_text=True)
    head = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page.split('id="header-counts"', 1)[1].split("queued", 1)[0]))
    numbers = [int(n) for n in re.findall(r"(\d+) (?:active|overdue|due soon)", head)]
    assert numbers == [4, 1, 2]
    assert re.search(r'<abbr id="header-queued" title="saves the watcher is handling[^"]*">3 queued</abbr>', page)
    config = ws.root / "config.json"
    config.write_text(json.dumps({"workspace": str(ws.root)}))
    out = CliRunner().invoke(cli_main, ["--config", str(config), "status"], catch_exceptions=False).output
    assert "jobs: 4 active · 1 overdue · 2 due soon · 3 queued" in out
    ws.write_state("health", {"pid": 1, "running": True, "watcher_alive": True, "queue_length": 3,
                              "updated_at": (utcnow() - timedelta(minutes=5)).isoformat()})
    assert "header-queued" not in client.get("/").get_data(as_text=True)  # stale: no number is better than old


def test_the_daemon_warms_the_overview_of_each_new_latest_version_once(
        settings: Settings, ws: Workspace, order: Order) -> None:
    from review_app.views.tiles import warm_latest

    version, _ = _big_version(ws, order, (5000, 300))
    done: set[tuple[int, str, int]] = set()
    assert warm_latest(ws, settings, done) == 1
    cache = cache_dir(ws, order.receipt_id, order.jobs[0].job_id, version)
    overview = tiles.plan(5000, 300).overview_level()
    assert sorted(int(p.name) for p in cache.iterdir()) == list(range(overview, tiles.plan(5000, 300).levels))
    assert not (cache / "0").exists()  # full resolution waits for someone to zoom in
    assert warm_latest(ws, settings, done) == 0


def test_a_live_refresh_leaves_an_actions_message_for_the_page_it_redirects_to(
        client: FlaskClient, order: Order) -> None:
    page = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"
    done = post(client, f"{page}/note", {"text": "more blue in the sky"}, page=page)
    assert done.status_code == 303
    # The old page's poll saw the order change and refreshes before the browser follows the redirect.
    refreshed = client.get(page, headers={"X-Kaalwatch-Refresh": "1"}).get_data(as_text=True)
    assert 'class="flash' not in refreshed and "more blue in the sky" in refreshed
    shown = client.get(done.headers["Location"]).get_data(as_text=True)
    assert re.search(r'class="flash ok"[^>]*>Note saved', shown), shown[:2000]
