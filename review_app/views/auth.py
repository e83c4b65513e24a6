"""Logging in and out with the password set by ``kaalwatch set-password``, throttled per client."""

from __future__ import annotations

import logging

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from review_app import security
from review_app.runtime import runtime

bp = Blueprint("auth", __name__)
log = logging.getLogger("kaalwatch.review")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    rt = runtime()
    target = security.safe_next(request.values.get("next"))
    if g.logged_in:
        return redirect(target)
    have_password = security.password_hash(rt.ws) is not None
    if request.method == "GET":
        return render_template("login.html", next=target, have_password=have_password)
    client = request.remote_addr or "unknown"
    wait = rt.throttle.wait_seconds(client)
    if wait > 0:
        flash(f"Too many wrong passwords. Try again in {int(wait) + 1} seconds.", "error")
        return render_template("login.html", next=target, have_password=have_password), 429
    if security.verify_password(rt.ws, request.form.get("password", "")):
        rt.throttle.success(client)
        security.start_session(rt.ws)
        log.info("review page: login from %s", client)
        return redirect(target)
    rt.throttle.failure(client)
    log.warning("review page: wrong password from %s", client)
    flash("Wrong password." if have_password else "No password is set yet: run `kaalwatch set-password`.", "error")
    return render_template("login.html", next=target, have_password=have_password), 401


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))
