"""The review page: ``create_app(settings)`` builds the Flask application the daemon serves with waitress.

One Blueprint per area (``views/``), registered in :func:`create_app`; the guards every request passes
(Host allow-list, login, CSRF, headers) live in :mod:`review_app.security`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from kaalwatch.errors import ConfigError
from kaalwatch.loopback import is_loopback_host
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import filters, security, sessions
from review_app.runtime import OrderCache, Runtime

log = logging.getLogger("kaalwatch.review")

def create_app(settings: Settings, workspace: Workspace | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    """Build the review application for ``settings`` (and an already open ``workspace``, if given).

    Refuses (``ConfigError``) to build a page for a non-loopback address without a password set.
    """
    ws = workspace or Workspace(settings)
    ws.create()
    review = settings.review
    loopback = is_loopback_host(review.host)
    if not loopback and security.password_hash(ws) is None:
        raise ConfigError(
            f"review.host is {review.host}, which is not loopback, and no review password is set",
            hint="run `kaalwatch set-password` first, or bind the page to 127.0.0.1",
        )
    app = Flask(__name__)
    # "//etc/passwd" in a path is a 404, not a redirect to a tidied path that might match something.
    app.url_map.merge_slashes = False
    app.config.update(
        SESSION_COOKIE_NAME="kaalwatch_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,  # served over plain http on loopback; the cookie never leaves the machine
        MAX_CONTENT_LENGTH=256 * 1024,
        MAX_FORM_MEMORY_SIZE=128 * 1024,
        # The password may be waived only on loopback, and only when the settings say so.
        KAALWATCH_AUTH_REQUIRED=review.require_password or not loopback,
        KAALWATCH_PAGE_SIZE=100,
    )
    if test_config:
        app.config.update(test_config)
    db = sessions.Database(ws.secrets)
    limits = sessions.SessionLimits(idle_seconds=review.idle_minutes * 60, max_age_seconds=review.session_hours * 3600)
    app.session_interface = sessions.ServerSessionInterface(sessions.SessionStore(db, limits))
    throttle = sessions.LoginThrottle(db, free=review.login_attempts, base_seconds=review.login_lock_seconds,
                                      max_seconds=max(review.login_lock_seconds, review.login_lock_max_seconds))
    app.extensions["kaalwatch"] = Runtime(settings=settings, ws=ws, orders=OrderCache(ws), throttle=throttle)
    policy = security.HostPolicy.from_settings(review.allowed_hosts, review.port)
    app.extensions["kaalwatch_hosts"] = policy
    security.init_app(app, ws, policy)
    filters.init_app(app)
    # Imported here, not at the top: `kaalwatch set-password` imports this package without building a page.
    from review_app.views import auth, delivery, errors, files, health, job, jobs, live, tiles

    for view in (health, errors, auth, jobs, job, files, tiles, live, delivery):
        app.register_blueprint(view.bp)
    # The index is kept fresh by every write and by the daemon's rescans; bring it in line once here so
    # the list never walks the folders inside a request.
    report = ws.refresh_index()
    log.info("review page ready: %d order folders indexed, %d parsed", report.scanned, report.parsed)
    return app
