"""Connecting the shop: OAuth 2.0 Authorization Code with PKCE (S256), by loopback callback or pasted URL.

:func:`connect` prints the consent URL, lets ``open_url`` show it (a browser, or in the demo a plain GET
against a sandbox that approves at once), receives the redirect on a one-shot HTTP server on
``127.0.0.1`` — or, in paste mode, reads the URL the browser was sent to from ``input_stream`` — checks
``state``, exchanges the code, learns ``user_id``/``shop_id`` (``getMe``), the shop's name and the token's
scopes, and saves everything with :class:`~kaalwatch.etsy.tokens.TokenStore`. No code, verifier, state or
token is ever printed or logged.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urlsplit

from kaalwatch.errors import AuthError, EtsyError, GrantRevokedError
from kaalwatch.etsy.client import EtsyClient, etsy_connect_url
from kaalwatch.etsy.tokens import TokenStore, tokens_from_answer
from kaalwatch.settings import Settings

log = logging.getLogger(__name__)

CALLBACK_PATH = "/callback"
DEFAULT_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Connection:
    """The connected shop (no secrets)."""

    user_id: int | None
    shop_id: int | None
    shop_name: str
    scopes: tuple[str, ...]
    expires_at: float
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    """(verifier, challenge): 86 URL-safe characters and ``BASE64URL(SHA256(verifier))`` (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent_url(settings: Settings, redirect_uri: str, state: str, challenge: str) -> str:
    params = {"response_type": "code", "client_id": settings.etsy.keystring, "redirect_uri": redirect_uri,
              "scope": " ".join(settings.etsy.scopes), "state": state, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    return f"{etsy_connect_url(settings.etsy)}?{urlencode(params)}"


def parse_redirect(url: str, state: str) -> str:
    """The code from the URL the browser was sent to; :class:`AuthError` on a wrong state or a refusal."""
    query = {key: values[0] for key, values in parse_qs(urlsplit(url.strip()).query).items()}
    if not secrets.compare_digest(query.get("state", "").encode(), state.encode()):
        raise AuthError("the redirect did not carry this attempt's state (a stale or forged link)",
                        hint="run `kaalwatch auth` again and use the newest link")
    if query.get("error"):
        raise AuthError(f"Etsy did not grant access ({html.escape(query['error'])[:60]})",
                        hint="run `kaalwatch auth` again and press Allow")
    code = query.get("code", "")
    if not code:
        raise AuthError("the redirect carried no authorization code", hint="run `kaalwatch auth` again")
    return code


class _CallbackServer:
    """One-shot loopback server: remembers the first ``/callback`` whose state matches, then stops."""

    def __init__(self, port: int, state: str) -> None:
        self.result: str | AuthError | None = None
        self.done = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self._reply(404, "Not found", "This address only receives Etsy's redirect.")
                    return
                try:
                    code = parse_redirect(self.path, state)
                except AuthError as exc:
                    if "state" in exc.message:  # not our attempt: keep waiting for the real redirect
                        self._reply(400, "Unknown request", "This link does not belong to the running sign-in.")
                        return
                    outer.finish(exc)
                    self._reply(400, "Not connected", exc.message)
                    return
                outer.finish(code)
                self._reply(200, "Shop connected", "kaalwatch is connected to your Etsy shop. You can close this tab.")

            def _reply(self, status: int, title: str, text: str) -> None:
                body = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query string holds the code: never write it anywhere

        try:
            self.httpd = HTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise AuthError(f"cannot listen on 127.0.0.1:{port} for Etsy's redirect ({exc.strerror})",
                            hint="free that port or pass --port") from None
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="kaalwatch-oauth-callback")

    def finish(self, result: str | AuthError) -> None:
        if self.result is None:
            self.result = result
        self.done.set()

    def __enter__(self) -> _CallbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def connect(settings: Settings, ws: Any, open_url: Callable[[str], object], *, paste: bool = False,
            input_stream: TextIO | None = None, output: Callable[[str], None] = print, port: int | None = None,
            wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Connection:
    """The whole PKCE flow (see the module docstring); returns the connected shop."""
    if not settings.etsy.keystring or not settings.etsy.shared_secret:
        raise AuthError("the Etsy keystring and shared secret are not set",
                        hint="pass --keystring/--shared-secret to `kaalwatch auth` or set the environment")
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    store = TokenStore(ws)
    with EtsyClient(settings.etsy, store) as client:
        if paste:
            listen = settings.etsy.redirect_port or 3003
            redirect_uri = settings.etsy.redirect_uri or f"http://localhost:{listen}{CALLBACK_PATH}"
            url = consent_url(settings, redirect_uri, state, challenge)
            output("Open this address in a browser, sign in to Etsy and allow access:")
            output(url)
            output("Then paste the whole address your browser was sent to (even if the page did not load):")
            line = (input_stream or sys.stdin).readline()
            if not line.strip():
                raise AuthError("no redirected URL was pasted", hint="run `kaalwatch auth --no-browser` again")
            code = parse_redirect(line, state)
        else:
            with _CallbackServer(settings.etsy.redirect_port if port is None else port, state) as server:
                redirect_uri = settings.etsy.redirect_uri or f"http://localhost:{server.port}{CALLBACK_PATH}"
                url = consent_url(settings, redirect_uri, state, challenge)
                output("Opening Etsy to connect your shop. If no browser opens, visit:")
                output(url)
                try:
                    open_url(url)
                except Exception as exc:  # a browser that cannot start is not fatal: the URL is printed
                    log.info("could not open the browser (%s); use the printed address", exc.__class__.__name__)
                if not server.done.wait(wait_seconds):
                    raise AuthError(f"no answer from Etsy within {int(wait_seconds)} s",
                                    hint="run `kaalwatch auth` again, or `kaalwatch auth --no-browser`")
                if isinstance(server.result, AuthError):
                    raise server.result
                code = str(server.result)
        return _finish(client, store, settings, code, verifier, redirect_uri)


def _exchange_refused(exc: AuthError) -> AuthError:
    """What a refused code exchange means, and what to do about it."""
    if isinstance(exc, GrantRevokedError):
        said = exc.message.split("(", 1)[-1].rstrip(")")  # Etsy's words, e.g. "invalid_grant: code has expired"
        return AuthError(f"Etsy refused this sign-in's authorization code ({said})",
                         hint="start over and finish within a few minutes: a code works once, shortly, and only "
                              "with the redirect address it was issued for")
    return AuthError(f"Etsy refused the app's credentials while signing in ({exc.message})",
                     hint="check the keystring and shared secret at https://www.etsy.com/developers/your-apps "
                          "and pass them with --keystring/--shared-secret")


def _finish(client: EtsyClient, store: TokenStore, settings: Settings, code: str, verifier: str,
            redirect_uri: str) -> Connection:
    now = time.time()
    try:
        answer = client.exchange_code(code, verifier, redirect_uri)
    except AuthError as exc:
        # This *is* `kaalwatch auth`: "run kaalwatch auth" would send the user round in a circle.
        raise _exchange_refused(exc) from None
    tokens = tokens_from_answer(answer, now, base_url=settings.etsy.base_url.rstrip("/"))
    with store.lock():
        store.save(tokens)  # saved at once: nothing after this may lose a fresh grant
    client._tokens = tokens
    me = client.get_me()
    shop_id = me.get("shop_id")
    user_id = me.get("user_id") or tokens.user_id
    shop_name = ""
    if shop_id:
        try:
            shop_name = str(client.get_shop(int(shop_id)).get("shop_name") or "")
        except EtsyError as exc:
            log.info("shop name not available (%s)", exc)
    try:
        scopes = tuple(client.token_scopes(tokens.access_token))
    except EtsyError:
        scopes = tuple(settings.etsy.scopes)
    # The pair in use now (get_me may have refreshed it), with what connecting learnt about the shop.
    final = replace(client.tokens(), user_id=int(user_id) if user_id else None,
                    shop_id=int(shop_id) if shop_id else None, shop_name=shop_name, scopes=scopes)
    with store.lock():
        store.save(final)
    client._tokens = final
    log.info("Etsy shop %s connected", final.shop_id)
    return Connection(user_id=final.user_id, shop_id=final.shop_id, shop_name=shop_name, scopes=scopes,
                      expires_at=final.expires_at, redirect_uri=redirect_uri)
