"""Previews, thumbnails and reference images, served by id and resolved through the manifest.

A request names an order, a job, a version number or a reference's position — never a path. The path comes
from the manifest and must resolve inside the tool area (``ws.tool_path``) or inside the order's own
``references/`` folder; only image types a browser shows are served, so a version copy, a manifest or a
secret can never come out of here.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, request, send_file
from werkzeug.wrappers import Response

from kaalwatch.errors import NotFoundError
from kaalwatch.model import Order
from kaalwatch.store import REFERENCES
from review_app.runtime import runtime

bp = Blueprint("files", __name__, url_prefix="/files")

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif",
               ".webp": "image/webp"}
MAX_AGE = 300  # version files never change (new saves get new numbers); a short cache keeps lists snappy


def serve_image(path: Path, *, download_name: str | None = None, max_age: int = MAX_AGE) -> Response:
    """An image file, privately cached for ``max_age`` seconds, under the strict policy for files."""
    mimetype = IMAGE_TYPES.get(path.suffix.lower())
    if mimetype is None or not path.is_file():
        abort(404, "no such file")
    response = send_file(path, mimetype=mimetype, conditional=True, max_age=max_age,
                         as_attachment=download_name is not None, download_name=download_name)
    response.cache_control.private = True
    response.cache_control.public = False
    response.headers["X-Kaalwatch-File"] = "1"  # security.headers gives files their own strict CSP
    return response


def _tool_file(relative: str | None) -> Path:
    if not relative:
        abort(404, "not made yet")
    ws = runtime().ws
    try:
        path = ws.tool_path(relative)
    except NotFoundError:
        abort(404, "no such file")
    # A hand-edited manifest could point into the tool's private parts; those are never served.
    private = (ws.secrets_dir, ws.state_dir, ws.locks_dir, ws.logs_dir, ws.versions_dir)
    if any(folder.resolve() in path.parents for folder in private):
        abort(404, "no such file")
    return path


def serve_tool_file(relative: str | None) -> Response:
    """An image of the tool area named by a manifest (e.g. a deliverable's thumbnail), with every check above."""
    return serve_image(_tool_file(relative))


@bp.get("/<int:receipt_id>/<job_id>/v/<int:number>/<any(preview, thumb):kind>")
def version_file(receipt_id: int, job_id: str, number: int, kind: str) -> Response:
    order = runtime().orders.load(receipt_id)
    version = order.job(job_id).version(number)
    if version is None:
        abort(404, f"no version {number}")
    path = _tool_file(version.preview if kind == "preview" else version.thumb)
    download = None
    if kind == "preview" and request.args.get("download") == "1":
        download = f"{receipt_id}-{number:03d}-proof{path.suffix.lower()}"
    return serve_image(path, download_name=download)


def _reference_path(order: Order, index: int) -> Path:
    if not 0 <= index < len(order.references):
        abort(404, "no such reference")
    ref = order.references[index]
    if ref.status != "ok":
        abort(404, "this reference did not download")
    folder = runtime().ws.folder_of(order.receipt_id)
    if ref.job_id:
        try:
            job = order.job(ref.job_id)
        except NotFoundError:
            abort(404, "no such reference")
        if job.folder:
            folder = folder / job.folder
    base = (folder / REFERENCES).resolve()
    path = (base / ref.name).resolve()
    # The name comes from a manifest a human may edit: it must stay a plain file name in references/.
    if path.parent != base:
        abort(404, "no such reference")
    return path


@bp.get("/<int:receipt_id>/ref/<int:index>")
def reference(receipt_id: int, index: int) -> Response:
    order = runtime().orders.load(receipt_id)
    path = _reference_path(order, index)
    if path.suffix.lower() not in IMAGE_TYPES:  # TIFF, HEIC, PSD: the browser cannot show them; the thumb can
        return reference_thumb(receipt_id, index)
    return serve_image(path)


@bp.get("/<int:receipt_id>/ref/<int:index>/thumb")
def reference_thumb(receipt_id: int, index: int) -> Response:
    order = runtime().orders.load(receipt_id)
    if not 0 <= index < len(order.references):
        abort(404, "no such reference")
    ref = order.references[index]
    if ref.thumb:
        return serve_image(_tool_file(ref.thumb))
    return serve_image(_reference_path(order, index))
