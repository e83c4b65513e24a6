"""Error pages: every expected failure becomes a short page with the right status, never a traceback."""

from __future__ import annotations

import logging

from flask import Blueprint, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

from kaalwatch.errors import KaalwatchError, ManifestError, NotFoundError, WorkspaceError

bp = Blueprint("errors", __name__)
log = logging.getLogger("kaalwatch.review")

_TITLES = {400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 409: "Conflict",
           413: "Too large", 429: "Too many attempts", 500: "Something went wrong", 503: "Unavailable"}


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, title=_TITLES.get(status, "Error"), message=message), status


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    # Werkzeug's default descriptions are fine for the owner; our own abort() messages are kinder.
    return error_page(status, exc.description or _TITLES.get(status, "Error"))


# Our own failures: their one line, with the status of their kind (409 for any other kind).
_STATUS: dict[type[KaalwatchError], int] = {NotFoundError: 404, WorkspaceError: 503}


@bp.app_errorhandler(KaalwatchError)
def expected(exc: KaalwatchError) -> tuple[str, int]:
    if isinstance(exc, ManifestError):
        return error_page(409, f"this order's manifest cannot be read: {exc}")
    return error_page(next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 409), str(exc))


@bp.app_errorhandler(InternalServerError)
def internal(exc: InternalServerError) -> tuple[str, int]:
    log.error("review page: internal error: %s", type(getattr(exc, "original_exception", exc)).__name__)
    return error_page(500, "The page failed. The details are in the log; nothing was changed.")
