"""Logging in and out with the password set by ``kaalwatch set-password``, throttled per account."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from review_app import security
from review_app.runtime import runtime

bp = Blueprint("auth", __name__)
log = logging.getLogger("kaalwatch.review")


def _locked_message(wait: float) -> str:
    until = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
    return (f"Too many wrong passwords: login is locked until {until} (in {int(wait) + 1} seconds). "
            "Running `kaalwatch set-password` lifts the lock at once.")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    rt = runtime()
    target = security.safe_next(request.values.get("next"))
    if g.logged_in:
        return redirect(target)
    have_password = security.password_hash(rt.ws) is not None
    if request.method == "GET":
        wait = rt.throttle.wait_seconds()
        if wait > 0:  # the owner sees the lock and when it ends before typing anything
            flash(_locked_message(wait), "error")
        return render_template("login.html", next=target, have_password=have_password)
    client = request.remote_addr or "unknown"
    # Counted before it is checked, in one step with the lock check: parallel guesses cannot slip through.
    wait = rt.throttle.admit()
    if wait > 0:
        flash(_locked_message(wait), "error")
        return render_template("login.html", next=target, have_password=have_password), 429
    if security.verify_password(rt.ws, request.form.get("password", "")):
        rt.throttle.success()
        security.start_session(rt.ws)
        log.info("review page: login from %s", client)
        return redirect(target)
    log.warning("review page: wrong password from %s", client)
    flash("Wrong password." if have_password else "No password is set yet: run `kaalwatch set-password`.", "error")
    return render_template("login.html", next=target, have_password=have_password), 401


@bp.post("/logout")
def logout() -> Response:
    security.end_session()
    flash("Logged out.", "info")
    return redirect(url_for("auth.login"))
