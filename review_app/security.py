"""The review page's guards: password, sessions, CSRF, the Host allow-list and headers.

Everything that decides whether a request may be served lives here, in one ``before_request`` and one
``after_request``, so a new view cannot forget a rule. Buyer data sits behind these checks; the page is
meant for one person on their own machine, so loopback is the default and anything else needs a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import Flask, Response, abort, current_app, g, redirect, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from kaalwatch.errors import ConfigError
from kaalwatch.store import Workspace
from review_app import sessions

MIN_PASSWORD_LENGTH = 8
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
# Files (previews, references) get their own, stricter policy: nothing in them may run or load anything.
FILE_CSP = "default-src 'none'; img-src 'self'; sandbox"
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Endpoints reachable without a login: the login form itself and the page's own CSS and JavaScript.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "static"})

_hasher = PasswordHasher()


# --------------------------------------------------------------------------------------------------
# Password (a file in the workspace's 0700 secrets folder, 0600); sessions live in review_app.sessions


def set_password(ws: Workspace, password: str) -> None:
    """Hash ``password`` with argon2id and store it; every session ends and the login lock is lifted."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    ws.secrets.write_text(ws.secrets.password_path, _hasher.hash(password) + "\n")
    sessions.revoke_all(ws)


def password_hash(ws: Workspace) -> str | None:
    try:
        text = ws.secrets.password_path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text or None


def verify_password(ws: Workspace, password: str) -> bool:
    stored = password_hash(ws)
    if stored is None:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_fingerprint(stored: str | None) -> str:
    """A short digest of the stored hash: kept in the session so a new password ends every old session."""
    return hashlib.sha256((stored or "").encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Hosts


def split_host(header: str) -> tuple[str, int | None]:
    """``Host`` header → (lower-case name, port or None); IPv6 literals keep their brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0:
            return header, None
        name, rest = header[: end + 1], header[end + 1 :]
    else:
        name, _, port_text = header.partition(":")
        rest = f":{port_text}" if port_text else ""
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return name, -1  # garbage after the name never matches
    return name, int(rest[1:])


@dataclass
class HostPolicy:
    """The Host allow-list that stops DNS rebinding: a page on evil.example resolving to 127.0.0.1 still
    sends ``Host: evil.example``, which is refused."""

    names: set[str]
    ports: set[int]

    @classmethod
    def from_settings(cls, extra: tuple[str, ...], port: int) -> HostPolicy:
        names = {name.lower() for name in LOOPBACK_NAMES}
        names.update(h.strip().lower() for h in extra if h.strip())
        return cls(names=names, ports={port} if port else set())

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        if header.strip().lower() in self.names:  # an allowed entry may carry its own port
            return True
        name, port = split_host(header)
        if name not in self.names:
            return False
        # No port: the test client and proxies on 80; a port: it must be one this server listens on.
        return port is None or port in self.ports


# --------------------------------------------------------------------------------------------------
# CSRF


def csrf_token() -> str:
    """The session's CSRF token (made on first use); templates put it in every form."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(expected, str) and len(expected) >= 32 and hmac.compare_digest(expected, given)


def _same_origin() -> bool:
    """A second line behind the CSRF token: a browser says where a POST comes from.

    ``Sec-Fetch-Site`` is sent by current browsers whatever the referrer policy; ``Origin`` is "null" under
    our ``no-referrer`` policy, so it is only compared when it names a real origin. Clients sending neither
    (scripts, old browsers) rely on the token alone.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()


# --------------------------------------------------------------------------------------------------
# Sessions


def logged_in(ws: Workspace) -> bool:
    """Idle and absolute expiry are the session store's (a row that outlived them is not loaded at all)."""
    if not current_app.config["KAALWATCH_AUTH_REQUIRED"]:
        return True
    if not session.get("user"):
        return False
    # A password file replaced by hand (not through set-password) still ends the sessions made before it.
    return hmac.compare_digest(str(session.get("pw", "")), password_fingerprint(password_hash(ws)))


def start_session(ws: Workspace) -> None:
    """A fresh session on login: a new id (no fixation) and a new CSRF token (one seen before is useless)."""
    _fresh_session()
    session["user"] = sessions.ACCOUNT
    session["pw"] = password_fingerprint(password_hash(ws))
    csrf_token()


def end_session() -> None:
    """Logout: the server forgets the session, so a copy of the cookie is refused from now on."""
    _fresh_session()


def _fresh_session() -> None:
    session.clear()
    if isinstance(session, sessions.ServerSession):
        session.rotate()


def safe_next(target: str | None) -> str:
    """Only a path on this site may follow a login: no scheme, no ``//host``, no backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("jobs.today")
    if any(ord(ch) < 32 for ch in target):
        return url_for("jobs.today")
    return target


# --------------------------------------------------------------------------------------------------
# Wiring


def init_app(app: Flask, ws: Workspace, policy: HostPolicy) -> None:
    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def guard() -> BaseResponse | None:
        # 1. DNS rebinding: the Host header must be one of ours, before anything else is looked at.
        if not policy.allows(request.headers.get("Host")):
            abort(400, "unknown Host header")
        g.logged_in = logged_in(ws)
        # 2. All but the login form and the static files need a session (a POST without one changes nothing:
        #    it is sent to log in).
        if not g.logged_in and request.endpoint not in PUBLIC_ENDPOINTS:
            target = request.full_path if request.method in SAFE_METHODS else request.path
            return redirect(url_for("auth.login", next=target.rstrip("?")))
        # 3. Every state-changing request (the login form's too) carries the session's CSRF token and comes
        #    from our origin.
        if request.method not in SAFE_METHODS and not (_csrf_ok() and _same_origin()):
            abort(400, "missing or wrong CSRF token; reload the page and try again")
        # 4. A number too big for the index (SQLite's 64-bit integers) names nothing; say so before any lookup.
        if any(isinstance(v, int) and not 0 <= v < 2**63 for v in (request.view_args or {}).values()):
            abort(404, "no such order")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        is_file = response.headers.pop("X-Kaalwatch-File", None)  # a mark from the file views, not sent
        response.headers["Content-Security-Policy"] = FILE_CSP if is_file else CSP
        if response.mimetype == "text/html" or "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response
