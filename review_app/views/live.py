"""The live page's "has anything changed?" stamp: a conditional poll, answered from a ``stat`` or two.

Why a poll and not server-sent events: the page is served by waitress, a fixed pool of worker threads
(four by default). An event stream holds one of them for as long as a tab is open, so five open tabs would
leave none to serve the page itself, and a stream does not survive the daemon restarting anyway. A poll
three times a second of a stamp that costs two ``stat`` calls and one small JSON read takes a thread for well
under a millisecond and answers ``304 Not Modified`` when nothing changed. live.js fetches the page itself
(the same URL) only when the stamp moved, and swaps in its content without touching the viewer's zoom or
what the owner is typing.

What the stamp covers:
- a job page: the order's ``order.yaml`` (every change to an order is an atomic replace: new inode, new
  mtime — a new version, a preview made, a sync result, a state change from another tab);
- the list: the index (``index.sqlite`` and its write-ahead log, written with every manifest write);
- both: what the page header shows (the daemon's health counts and the last sync).
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from kaalwatch.errors import NotFoundError
from kaalwatch.store import MANIFEST
from review_app.runtime import file_stamp, runtime
from review_app.views import health

bp = Blueprint("live", __name__)

#: How often live.js asks. A new version must be on the page within quiet + preview + 0.5 s of its save, and
#: a poll adds up to its whole interval: 300 ms keeps the p95 inside. A poll costs ~1 ms of one thread.
POLL_MS = 300


def stamp(receipt_id: int | None) -> str:
    rt = runtime()
    parts: list[object] = []
    if receipt_id is None:
        index = rt.ws.index_path
        parts += [file_stamp(index), file_stamp(index.with_name(index.name + "-wal"))]
    else:
        parts.append(file_stamp(rt.ws.folder_of(receipt_id) / MANIFEST))
    head = health.status()
    parts += [head["watcher"], head["queue_length"], head["last_sync"], head["sync_error"]]
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


@bp.get("/live")
def live() -> Response:
    raw = request.args.get("order", "")
    receipt_id = int(raw) if raw.isdigit() and len(raw) < 19 else None  # < 19 digits: fits SQLite
    tag = stamp(receipt_id)
    fresh = request.if_none_match.contains(tag)
    response = Response(status=304) if fresh else jsonify(stamp=tag, poll_ms=POLL_MS)
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _page_order() -> int | None:
    receipt_id = (request.view_args or {}).get("receipt_id")
    return receipt_id if isinstance(receipt_id, int) and 0 <= receipt_id < 2**63 else None


@bp.app_template_global("live_url")
def live_url() -> str:
    """The stamp this page follows: its order's when it shows one, the list's otherwise."""
    receipt_id = _page_order()
    return "/live" if receipt_id is None else f"/live?order={receipt_id}"


@bp.app_template_global("live_stamp")
def live_stamp() -> str:
    """The stamp of the data this page is rendered from, so a change during the render is not missed."""
    try:
        return stamp(_page_order())
    except NotFoundError:
        return ""
