"""The sandbox's HTTP layer: Etsy's Open API v3 paths, the OAuth pages, served files and the ``/_sandbox`` admin API."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from kaalwatch.sandbox import pages
from kaalwatch.sandbox.oauth import Grant, OAuthError
from kaalwatch.sandbox.pages import CONNECT_PATH, ORDER_PAGE_PATH
from kaalwatch.sandbox.recording import RecordedRequest, redacted_form, redacted_headers
from kaalwatch.sandbox.shop import JSON, ShopError, parse_bool, parse_int, split_list

if TYPE_CHECKING:
    from kaalwatch.sandbox.app import Sandbox

TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105 - a URL path, not a secret
ADMIN_PREFIX = "/_sandbox"
FILES_PREFIX = "/_files/"
# Browser pages: path -> (operation, the page over a GET's query or a POST's form).
_PAGES = {CONNECT_PATH: ("oauthConnect", pages.connect), ORDER_PAGE_PATH: ("orderPage", pages.order_page)}
# Handler threads give up on an idle keep-alive connection after this long (seconds).
IDLE_TIMEOUT = 15.0


OpHandler = Callable[["Handler", dict[str, int]], Any]


@dataclass(frozen=True)
class Route:
    """One Etsy operation: method, path regex, operationId, required OAuth scope (None: api key only)."""

    method: str
    template: str  # Etsy's path with {name} placeholders
    operation: str
    scope: str | None
    handler: OpHandler  # returns the 200 body; raises ShopError or OAuthError otherwise

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


class SandboxHTTPServer(ThreadingHTTPServer):
    """Thread per connection; remembers open sockets so :meth:`close_all` can end keep-alives on stop."""

    daemon_threads = False  # joined in server_close(): stop() leaves no thread behind
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out or was killed mid-request is ordinary traffic here, not a server fault.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Shut every open connection so handler threads blocked on reads return at once."""
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """Parses one request, applies faults, auth and rate limits, dispatches, records."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Etsy's edge does; clients reuse connections
    # Headers and body go out in two writes: without TCP_NODELAY, delayed ACKs add ~40 ms per response.
    disable_nagle_algorithm = True
    server: SandboxHTTPServer
    server_version = "kaalwatch-sandbox"
    timeout = IDLE_TIMEOUT  # StreamRequestHandler.setup() puts it on the socket

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: tests and the demo read the request log instead of stderr.
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    # ----- plumbing -------------------------------------------------------------------------------------

    @property
    def sb(self) -> Sandbox:
        return self.server.sandbox

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        self.req_path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length > 0 else b""
        self.operation: str | None = None
        if self.req_path == ADMIN_PREFIX or self.req_path.startswith(ADMIN_PREFIX + "/"):
            self._run(self._admin, record=False)
            return
        fault = self.sb.faults.take(self.req_path)
        if fault is not None:
            if fault.latency > 0:
                self.sb.stopping.wait(fault.latency)
            if fault.drop:
                self._record(0)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.status is not None:
                self._pending_record = True
                self._send_json(fault.status, {"error": fault.message()})
                return
        self._run(self._etsy, record=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _run(self, fn: Callable[[], tuple[int, Any] | None], *, record: bool) -> None:
        # Recorded just before the response is written, so a client that has its answer can already
        # see the request in the log (tests count calls right after a response).
        self._pending_record = record
        try:
            result = fn()
            if result is not None:
                status, body = result
                self._send_json(status, body, self._extra_headers)
        except ShopError as err:
            self._send_json(err.status, {"error": err.message}, err.headers)
        except OAuthError as err:
            self._send_json(err.status, err.body())
        except Exception as err:  # a sandbox bug must still answer like a server, not hang the client
            self.log_error("internal error: %r", err)
            self._send_json(500, {"error": "Internal Server Error"})
        finally:
            self._maybe_record(500)  # only when the handler died before answering

    def _maybe_record(self, status: int) -> None:
        if self._pending_record:
            self._pending_record = False
            self._record(status)

    _extra_headers: dict[str, str] = {}  # noqa: RUF012 - replaced per request, never mutated
    _pending_record = False

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self._send(status, data, "application/json", headers)

    def _send(self, status: int, data: bytes, ctype: str | None, headers: dict[str, str] | None = None) -> None:
        self._maybe_record(status)
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _record(self, status: int) -> None:
        try:
            form = redacted_form(self._body_fields())
        except ShopError:
            form = {}
        self.sb._record(RecordedRequest(self.command, self.req_path, self.query, redacted_headers(self.headers.items()),
                                        status, self.sb.clock.now(), self.operation, form))

    def _body_fields(self) -> dict[str, Any]:
        """Form or JSON body as a dict (last value wins for repeated form fields)."""
        if not self.body:
            return {}
        ctype = self._ctype()
        if ctype == "application/json":
            try:
                value = json.loads(self.body)
            except ValueError:
                raise ShopError(400, "Request body is not valid JSON.") from None
            if not isinstance(value, dict):
                raise ShopError(400, "Request body must be a JSON object.")
            return value
        if ctype == "application/x-www-form-urlencoded":
            return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8", "replace"),
                                                   keep_blank_values=True).items()}
        raise ShopError(400, f"Unsupported Content-Type {ctype or '(none)'}.")

    def _q(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.query.items()}

    # ----- Etsy ---------------------------------------------------------------------------------------

    def _etsy(self) -> tuple[int, Any] | None:
        path, method = self.req_path, self.command
        if path in _PAGES:
            self.operation, build = _PAGES[path]
            self._send_page(build(self.sb, method, self._page_params()))
            return None
        if path.startswith(FILES_PREFIX):
            self.operation = "file"
            if method not in ("GET", "HEAD"):
                raise ShopError(405, "Method not allowed.")
            page = pages.served_file(self.sb, path[len(FILES_PREFIX):])
            if page is None:
                raise ShopError(404, "Not found.")
            self._send_page(page)
            return None
        if path == TOKEN_PATH:
            self.operation = "oauthToken"
            if method != "POST":
                raise ShopError(405, "Method not allowed.")
            self._check_api_key()
            return self._token()
        route, match = self._route(method, path)
        self.operation = route.operation
        keystring = self._check_api_key()
        grant = None
        auth = self.headers.get("Authorization")
        if route.scope is not None or auth:
            grant = self._check_bearer(auth, keystring)
            if route.scope is not None and route.scope not in grant.scopes:
                raise ShopError(403, f"Insufficient scope: this call requires {route.scope}.")
        limit_key = f"{keystring}:{grant.user_id}" if grant else keystring
        decision = self.sb.limiter.hit(limit_key)
        if decision.error is not None:
            raise ShopError(429, decision.error, decision.headers)
        self._extra_headers = decision.headers
        return 200, route.handler(self, self._path_ids(match))

    def _route(self, method: str, path: str) -> tuple[Route, re.Match[str]]:
        allowed = False
        for route in ROUTES:
            m = route.pattern.match(path)
            if m:
                if route.method == method:
                    return route, m
                allowed = True
        if allowed:
            raise ShopError(405, "Method not allowed.")
        raise ShopError(404, f"Resource not found: {method} {path}")

    def _check_api_key(self) -> str:
        raw = self.headers.get("x-api-key")
        if not raw:
            raise ShopError(403, "Missing x-api-key header.")
        if ":" not in raw:
            raise ShopError(403, "Shared secret is required in x-api-key header.")
        keystring, secret = raw.split(":", 1)
        if keystring != self.sb.keystring or secret != self.sb.shared_secret:
            raise ShopError(403, "Invalid API key.")
        return keystring

    def _check_bearer(self, auth: str | None, keystring: str) -> Grant:
        if not auth or not auth.lower().startswith("bearer "):
            raise OAuthError(401, "invalid_token", "access token is required")
        grant = self.sb.tokens.check(auth.split(" ", 1)[1].strip())
        if grant.client_id != keystring:
            raise OAuthError(401, "invalid_token", "access token was issued to another application")
        return grant

    def _path_ids(self, m: re.Match[str]) -> dict[str, int]:
        """The path's ids as integers, in path order; an unknown shop is a 404 before later ids are read."""
        ids: dict[str, int] = {}
        for name, raw in m.groupdict().items():
            ids[name] = parse_int(name, raw, minimum=1)
            if name == "shop_id" and ids[name] != self.sb.shop.shop_id:
                raise ShopError(404, f"Shop with shop_id {ids[name]} not found.")
        return ids

    def _ctype(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    # ----- operations that need more than the path ids ------------------------------------------------

    def op_token_scopes(self, ids: dict[str, int]) -> JSON:
        token = str(self._form_only().get("token") or "")
        try:
            return {"scopes": sorted(self.sb.tokens.check(token).scopes)}
        except OAuthError:
            raise OAuthError(401, "invalid_token", "token is not valid") from None

    def op_update_receipt(self, ids: dict[str, int]) -> JSON:
        fields = self._form_only()
        shipped = parse_bool("was_shipped", str(fields["was_shipped"])) if "was_shipped" in fields else None
        paid = parse_bool("was_paid", str(fields["was_paid"])) if "was_paid" in fields else None
        return self.sb.shop.update_receipt(ids["receipt_id"], was_shipped=shipped, was_paid=paid)

    def op_listings_batch(self, ids: dict[str, int]) -> JSON:
        raw = split_list(self.query.get("listing_ids", []))
        if not raw:
            raise ShopError(400, "listing_ids is required.")
        listing_ids = [parse_int("listing_ids", x, minimum=1) for x in raw]
        return self.sb.shop.listings_batch(listing_ids, self._includes())

    def _includes(self) -> list[str]:
        return split_list(self.query.get("includes", []))

    def _form_only(self) -> dict[str, Any]:
        if self.body and self._ctype() != "application/x-www-form-urlencoded":
            raise ShopError(400, "This endpoint accepts application/x-www-form-urlencoded only.")
        return self._body_fields()

    # ----- OAuth --------------------------------------------------------------------------------------

    def _token(self) -> tuple[int, Any]:
        if self._ctype() != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "the request body must be application/x-www-form-urlencoded")
        fields = {k: str(v) for k, v in self._body_fields().items()}
        grant_type = fields.get("grant_type")
        if fields.get("client_id") and fields["client_id"] != self.sb.keystring:
            raise OAuthError(401, "invalid_client", "client_id is not a known application")
        if grant_type == "authorization_code":
            return 200, self.sb.tokens.exchange_code(fields)
        if grant_type == "refresh_token":
            return 200, self.sb.tokens.refresh(fields)
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    # ----- pages --------------------------------------------------------------------------------------

    def _page_params(self) -> dict[str, str]:
        """A page's fields: the query of a GET, the form of a POST."""
        if self.command == "GET":
            return self._q()
        if self.command == "POST":
            return {k: str(v) for k, v in self._body_fields().items()}
        raise ShopError(405, "Method not allowed.")

    def _send_page(self, page: pages.Page) -> None:
        self._send(page.status, page.body, page.content_type, page.headers)

    # ----- admin --------------------------------------------------------------------------------------

    def _admin(self) -> tuple[int, Any]:
        try:
            return self.sb._admin(self.command, self.req_path[len(ADMIN_PREFIX):] or "/", self._q(),
                                  self._body_fields() if self.body else {})
        except (KeyError, ValueError, TypeError) as err:
            # Bad admin input (unknown receipt/listing, wrong types): the caller's mistake, say so.
            raise ShopError(400, f"bad admin request: {err}") from None


A = "/v3/application"
S = f"{A}/shops/{{shop_id}}"
R = f"{S}/receipts/{{receipt_id}}"
L = f"{A}/listings/{{listing_id}}"
# Order matters: /listings/batch must win over /listings/{listing_id}.
ROUTES: list[Route] = [
    Route("GET", f"{A}/openapi-ping", "ping", None, lambda h, ids: {"application_id": h.sb.application_id}),
    Route("POST", f"{A}/scopes", "tokenScopes", None, Handler.op_token_scopes),
    Route("GET", f"{A}/users/me", "getMe", "shops_r",
          lambda h, ids: {"user_id": h.sb.shop.user_id, "shop_id": h.sb.shop.shop_id}),
    Route("GET", S, "getShop", None, lambda h, ids: h.sb.shop.shop_body()),
    Route("GET", f"{S}/receipts", "getShopReceipts", "transactions_r", lambda h, ids: h.sb.shop.query_receipts(h._q())),
    Route("GET", R, "getShopReceipt", "transactions_r", lambda h, ids: h.sb.shop.receipt(ids["receipt_id"])),
    Route("PUT", R, "updateShopReceipt", "transactions_w", Handler.op_update_receipt),
    Route("GET", f"{R}/transactions", "getShopReceiptTransactionsByReceipt", "transactions_r",
          lambda h, ids: h.sb.shop.transactions(ids["receipt_id"])),
    Route("POST", f"{R}/tracking", "createReceiptShipment", "transactions_w",
          lambda h, ids: h.sb.shop.create_shipment(ids["receipt_id"], h._body_fields())),
    Route("GET", f"{A}/listings/batch", "getListingsByListingIds", None, Handler.op_listings_batch),
    Route("GET", L, "getListing", None, lambda h, ids: h.sb.shop.listing(ids["listing_id"], h._includes())),
    Route("GET", f"{L}/images", "getListingImages", None, lambda h, ids: h.sb.shop.listing_images(ids["listing_id"])),
    Route("GET", f"{L}/personalization", "getListingPersonalization", None,
          lambda h, ids: h.sb.shop.listing_personalization(ids["listing_id"])),
]
