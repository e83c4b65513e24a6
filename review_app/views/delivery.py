"""The delivery panel's actions: build the files for Etsy, "I have uploaded these", and manual confirmation.

Login, CSRF and the Host allow-list are enforced for every request by :mod:`review_app.security`; these
views only call :mod:`kaalwatch.delivery`, which changes orders through ``ws.edit`` + ``lifecycle``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from kaalwatch import delivery
from kaalwatch.errors import KaalwatchError
from kaalwatch.model import Order
from review_app.runtime import runtime

bp = Blueprint("delivery", __name__)
log = logging.getLogger("kaalwatch.review")


@bp.app_context_processor
def _panel_helpers() -> dict[str, Any]:
    def delivery_panel(order: Order) -> delivery.Panel | None:
        try:
            rt = runtime()
            return delivery.panel(rt.ws, rt.settings, order)
        except KaalwatchError:
            return None  # the page still shows; the panel says nothing rather than something wrong

    return {"delivery_panel": delivery_panel}


def _back(receipt_id: int, job_id: str) -> Response:
    return redirect(url_for("job.page", receipt_id=receipt_id, job_id=job_id) + "#delivery", code=303)


@bp.post("/jobs/<int:receipt_id>/<job_id>/deliver/prepare")
def prepare(receipt_id: int, job_id: str) -> Response:
    rt = runtime()
    try:
        report = delivery.prepare(rt.ws, rt.settings, receipt_id, actor="review")
    except KaalwatchError as exc:
        flash(str(exc), "error")
        return _back(receipt_id, job_id)
    if report.problems:
        for problem in report.problems:
            flash(f"Not ready: {problem}", "error")
    else:
        flash(f"{len(report.files)} file(s) ready in the deliver folder; upload them on Etsy's order page.", "ok")
    return _back(receipt_id, job_id)


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
