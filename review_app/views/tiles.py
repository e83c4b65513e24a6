"""The viewer's tiles: a version's own pixels, served by id, a 512-px tile at a time (see ``imaging.tiles``).

A request names an order, a job, a version number and a tile — never a path. The source is the version's
immutable copy (``ws.tool_path`` keeps it inside the tool area); the tiles are cached under
``.kaalwatch/tiles/`` by content hash, so they never go stale and can be deleted at any time.

A missing level is built inside the request, one build at a time for the whole page (``_BUILD``): a
100-megapixel original decodes to ~300 MB, and two at once on a small machine is how a server freezes.
Requests for tiles already built never touch that lock; a request for a missing level while another is
being built is answered at once with 503 and ``Retry-After`` (viewer.js asks again), never queued. The
daemon builds the overview levels of each new version ahead of time (:func:`warm`), so a first look at an
8000-px save does not wait for a decode.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, request, url_for
from werkzeug.wrappers import Response

from kaalwatch import naming
from kaalwatch.errors import ImageError, ManifestError, NotFoundError
from kaalwatch.imaging import tiles
from kaalwatch.model import Job, Order, Version
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app.runtime import runtime
from review_app.views.files import serve_image

bp = Blueprint("tiles", __name__)
log = logging.getLogger("kaalwatch.review")

_BUILD = threading.Lock()
TILE_MAX_AGE = 7 * 24 * 3600  # a tile's URL carries the version's content hash: it never changes


def cache_dir(ws: Workspace, receipt_id: int, job_id: str, version: Version) -> Path:
    return (ws.tiles_dir / str(int(receipt_id)) / naming.safe_component(job_id)
            / f"{version.number}-{version.sha256[:12]}")


def pyramid_of(version: Version) -> tiles.Pyramid | None:
    if not version.width or not version.height or not version.preview:
        return None  # no preview yet (or a kind with none): nothing decodes, nothing to tile
    return tiles.plan(version.width, version.height)


class Busy(Exception):
    """Another level is being built: asked again in a moment (503), so no request thread waits in line."""


def ensure_level(ws: Workspace, settings: Settings, receipt_id: int, job_id: str, version: Version,
                 level: int, *, wait: bool = True) -> Path:
    """The tile cache of ``version`` with ``level`` built; raises ImageError if the copy will not decode.

    With ``wait=False`` (the page) it raises ``Busy`` instead of queueing behind another build: waitress has
    a handful of threads, and requests piling up behind one 100-megapixel decode would stall the page.
    """
    pyramid = pyramid_of(version)
    if pyramid is None or not 0 <= level < pyramid.levels:
        raise NotFoundError(f"version {version.number} has no level {level}")
    cache = cache_dir(ws, receipt_id, job_id, version)
    if tiles.has_level(cache, level):
        return cache
    if not _BUILD.acquire(blocking=wait):
        raise Busy(f"version {version.number} is being prepared")
    try:
        # A level at or above the overview is built with the whole overview, from the one decode: the first
        # look asks for two levels at once (the one that fits and the coarsest), and a PNG cannot be
        # decoded at a smaller size, so building them one by one would decode the original twice.
        tiles.build(ws.tool_path(version.copy), cache, pyramid, min(level, pyramid.overview_level()),
                    background=settings.preview.background,
                    max_pixels=int(settings.preview.max_megapixels * 1_000_000))
    finally:
        _BUILD.release()
    return cache


def warm(ws: Workspace, settings: Settings, order: Order) -> int:
    """Build the overview levels of every job's latest version that lacks them; returns how many were built.

    Called by the daemon after changes, off the page's threads, so that opening a job shows its art at once.
    """
    built = 0
    for job in order.jobs:
        version = next((v for v in reversed(job.versions) if v.preview and v.width), None)
        pyramid = pyramid_of(version) if version else None
        if version is None or pyramid is None:
            continue
        level = pyramid.overview_level()
        if tiles.has_level(cache_dir(ws, order.receipt_id, job.job_id, version), level):
            continue
        try:
            ensure_level(ws, settings, order.receipt_id, job.job_id, version, level)
            built += 1
        except (ImageError, NotFoundError, OSError) as exc:
            log.warning("viewer: order %s version %d: %s", order.receipt_id, version.number, exc)
    return built


def warm_latest(ws: Workspace, settings: Settings, done: set[tuple[int, str, int]]) -> int:
    """``warm`` the orders whose active jobs have a latest version not warmed yet (``done`` remembers them)."""
    built = 0
    for row in ws.jobs(active=True, limit=100_000):
        if row.latest_version is None or not row.latest_thumb:
            continue
        key = (row.receipt_id, row.job_id, row.latest_version)
        if key in done:
            continue
        try:
            built += warm(ws, settings, ws.load(row.receipt_id))
        except (NotFoundError, ManifestError):
            continue
        done.add(key)
    return built


@bp.app_template_global("viewer_data")
def viewer_data(order: Order, job: Job) -> dict[str, Any]:
    """What viewer.js needs, as plain data (rendered into a data attribute, escaped by ``tojson``)."""
    rid, jid = order.receipt_id, job.job_id
    versions = []
    for v in job.versions:
        pyramid = pyramid_of(v)
        if pyramid is None:
            continue
        versions.append({
            "n": v.number, "w": v.width, "h": v.height, "levels": pyramid.levels, "tile": pyramid.tile,
            "tiles": url_for("tiles.tile", receipt_id=rid, job_id=jid, number=v.number, level=0, x=0, y=0)
            .removesuffix("/0/0/0") + "/",
            "proof": url_for("files.version_file", receipt_id=rid, job_id=jid, number=v.number, kind="preview"),
            "saved": v.saved_at.strftime("%Y-%m-%d %H:%M"), "approved": v.number == job.approved_version,
        })
    refs = [{"url": url_for("files.reference", receipt_id=rid, index=i), "label": ref.label or ref.name}
            for i, ref in enumerate(order.references) if ref.job_id in (None, jid) and ref.status == "ok"]
    wanted = {k: request.args.get(k, "") for k in ("a", "b")}
    return {"versions": versions, "refs": refs,
            **{k: int(v) if v.isdigit() and len(v) < 7 else None for k, v in wanted.items()}}


@bp.get("/jobs/<int:receipt_id>/<job_id>/v/<int:number>/tile/<int:level>/<int:x>/<int:y>")
def tile(receipt_id: int, job_id: str, number: int, level: int, x: int, y: int) -> Response:
    rt = runtime()
    order = rt.orders.load(receipt_id)
    version = order.job(job_id).version(number)
    if version is None:
        abort(404, f"no version {number}")
    try:
        cache = ensure_level(rt.ws, rt.settings, receipt_id, job_id, version, level, wait=False)
    except ImageError as exc:
        abort(404, str(exc))
    except Busy:
        busy = Response("being prepared; ask again in a second", status=503, mimetype="text/plain")
        busy.headers["Retry-After"] = "1"
        return busy
    path = tiles.tile_path(cache, level, x, y)
    if x > 4096 or y > 4096 or not path.is_file():
        abort(404, "no such tile")
    response = serve_image(path, max_age=TILE_MAX_AGE)
    response.cache_control.immutable = True
    return response
