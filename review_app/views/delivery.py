"""The delivery panel: build the files for Etsy (or "deliver anyway"), move a crop frame, "I have uploaded these",
manual confirmation, and the thumbnails of the built files.

Login, CSRF and the Host allow-list are enforced for every request by :mod:`review_app.security`; these
views only call :mod:`kaalwatch.delivery`, which changes orders through ``ws.edit`` + ``lifecycle``.
"""

from __future__ import annotations

import logging
import math

from flask import Blueprint, abort, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from kaalwatch import delivery
from kaalwatch.errors import KaalwatchError
from kaalwatch.model import Order
from review_app.runtime import runtime
from review_app.views.files import serve_tool_file

bp = Blueprint("delivery", __name__)
log = logging.getLogger("kaalwatch.review")


@bp.app_template_global("delivery_panel")
def delivery_panel(order: Order) -> delivery.Panel | None:
    try:
        rt = runtime()
        return delivery.panel(rt.ws, rt.settings, order)
    except KaalwatchError:
        return None  # the page still shows; the panel says nothing rather than something wrong


@bp.app_template_global("etsy_order_url")
def etsy_order_url(receipt_id: int) -> str:
    """Etsy's page of an order (another receipt than the page's own: an add-on the buyer paid apart)."""
    return delivery.etsy_order_url(runtime().settings, receipt_id)


def _back(receipt_id: int, job_id: str) -> Response:
    return redirect(url_for("job.page", receipt_id=receipt_id, job_id=job_id) + "#delivery", code=303)


@bp.post("/jobs/<int:receipt_id>/<job_id>/deliver/prepare")
def prepare(receipt_id: int, job_id: str) -> Response:
    rt = runtime()
    anyway = request.form.get("anyway") == "yes"
    try:
        report = delivery.prepare(rt.ws, rt.settings, receipt_id, actor="review", anyway=anyway)
    except KaalwatchError as exc:
        flash(str(exc), "error")
        return _back(receipt_id, job_id)
    if report.problems:
        for problem in report.problems:
            flash(f"Not ready: {problem}", "error")
    elif report.held:
        flash(f"Nothing built: {len(report.warnings)} promise(s) not met (see ✗ below). Fix the artwork, or "
              f"tick “deliver anyway” and build again.", "error")
    else:
        count = len(report.warnings)
        anyway_note = f" Delivered anyway despite {count} warning(s) (recorded)." if count else ""
        flash(f"{len(report.files)} file(s) ready in the deliver folder; upload them on Etsy's order page."
              f"{anyway_note}", "ok")
    return _back(receipt_id, job_id)


def _position(raw: str | None) -> float | None:
    """The frame position sent by the page, in percent; None (centred) when absent or not a number."""
    try:
        value = float(raw or "nan")
    except ValueError:
        return None
    return None if math.isnan(value) else min(100.0, max(0.0, value)) / 100


@bp.post("/jobs/<int:receipt_id>/<job_id>/deliver/crop")
def crop(receipt_id: int, job_id: str) -> Response:
    rt = runtime()
    key = request.form.get("key", "")
    order = rt.orders.load(receipt_id)
    job = order.job(job_id)  # an unknown job is a 404 (errors.py), like the job page's
    keys = {plan.key for plan in delivery.panel(rt.ws, rt.settings, order).plans if plan.job_id == job.job_id}
    if key not in keys:
        flash("That file has no crop to move.", "error")
        return _back(receipt_id, job_id)
    reset = request.form.get("reset") == "yes"
    margins = request.form.get("margins") == "yes" and not reset
    position = None if reset else _position(request.form.get("position"))
    try:
        removed = delivery.set_framing(rt.ws, receipt_id, job_id, key, position, margins, actor="review")
    except KaalwatchError as exc:
        flash(str(exc), "error")
        return _back(receipt_id, job_id)
    how = "with margins" if margins else "centred" if position is None else f"at {position:.0%}"
    rebuilt = " The files built before were taken out of the deliver folder: build them again." if removed else ""
    flash(f"Frame of {key} saved ({how}).{rebuilt}", "ok")
    return _back(receipt_id, job_id)


@bp.get("/jobs/<int:receipt_id>/<job_id>/deliver/thumb/<int:index>")
def thumb(receipt_id: int, job_id: str, index: int) -> Response:
    """The thumbnail of a built file's own pixels, by its position among the job's deliverables."""
    deliverables = runtime().orders.load(receipt_id).job(job_id).deliverables
    if not 0 <= index < len(deliverables):
        abort(404, "no such file")
    return serve_tool_file(deliverables[index].thumb)


def _confirm(receipt_id: int, job_id: str, *, manual: bool) -> Response:
    rt = runtime()
    if manual and request.form.get("sure") != "yes":
        flash("Tick the box to confirm that the buyer has the files.", "error")
        return _back(receipt_id, job_id)
    try:
        jobs = delivery.confirm_uploaded(rt.ws, receipt_id, manual=manual, actor="review")
    except KaalwatchError as exc:
        flash(str(exc), "error")
        return _back(receipt_id, job_id)
    if manual:
        flash(f"Marked delivered (confirmed by hand): job(s) {', '.join(jobs)}.", "ok")
    else:
        flash("Noted. The job becomes delivered when the next sync sees the order completed on Etsy.", "ok")
    return _back(receipt_id, job_id)


@bp.post("/jobs/<int:receipt_id>/<job_id>/deliver/uploaded")
def uploaded(receipt_id: int, job_id: str) -> Response:
    return _confirm(receipt_id, job_id, manual=False)


@bp.post("/jobs/<int:receipt_id>/<job_id>/deliver/confirm")
def confirm(receipt_id: int, job_id: str) -> Response:
    return _confirm(receipt_id, job_id, manual=True)
