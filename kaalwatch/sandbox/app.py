"""The ``Sandbox`` object: builds the shop, runs the HTTP server on loopback and offers the admin API."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kaalwatch.sandbox import seed as seeding
from kaalwatch.sandbox.clock import Clock
from kaalwatch.sandbox.faults import Fault, FaultInjector
from kaalwatch.sandbox.oauth import TokenStore
from kaalwatch.sandbox.ratelimit import RateLimiter
from kaalwatch.sandbox.recording import RecordedRequest
from kaalwatch.sandbox.server import SandboxHTTPServer
from kaalwatch.sandbox.shop import JSON, Shop, ShopError

DEFAULT_KEYSTRING = "sandbox-keystring"
DEFAULT_SHARED_SECRET = "sandbox-secret"  # noqa: S105 - a published, sandbox-only credential


@dataclasses.dataclass(eq=False)
class Sandbox:
    """A local Etsy shop speaking Open API v3 over a real socket on 127.0.0.1.

    Typical use::

        with Sandbox(seed=1) as sb:
            requests.get(f"{sb.url}/v3/application/openapi-ping",
                         headers={"x-api-key": f"{sb.keystring}:{sb.shared_secret}"})

    Constructor arguments: ``seed`` (data is a pure function of it), ``keystring``/``shared_secret``
    (the app credentials accepted in ``x-api-key``), ``port`` (0 = any free port), ``rate_per_second``/
    ``rate_per_day`` (per token holder), ``auto_approve`` (the consent page redirects at once),
    ``data_dir`` (replay Etsy-format JSON instead of seeding, see :mod:`kaalwatch.sandbox.replay`),
    ``orders_every`` (seconds between new orders, for the demo), ``receipts`` (that many extra seeded
    receipts), ``clock`` (a :class:`Clock`; tests pass ``Clock(frozen=True)``), ``token_ttl``
    (``expires_in`` of access tokens), ``refund_bumps_update`` (False mimics Etsy bug open-api #513),
    ``hostile`` (seed hostile buyer text instead of believable buyers, and one receipt whose upload URLs
    point off-sandbox), ``verbose`` (log requests).

    ``shop_id``, ``user_id`` and ``url`` are known once :meth:`start` returned.
    """

    seed: int = 1
    keystring: str = DEFAULT_KEYSTRING
    shared_secret: str = DEFAULT_SHARED_SECRET
    port: int = 0
    rate_per_second: int = 10
    rate_per_day: int = 10_000
    auto_approve: bool = False
    data_dir: str | Path | None = None
    orders_every: float | None = None
    receipts: int | None = None
    _: dataclasses.KW_ONLY
    clock: Clock = dataclasses.field(default_factory=Clock)
    token_ttl: int = 3600
    refund_bumps_update: bool = True
    hostile: bool = False
    host: str = "127.0.0.1"
    verbose: bool = False

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.keystring.encode()).hexdigest()
        self.application_id: int = int(digest[:8], 16) % 9_000_000 + 1_000_000
        self.tokens = TokenStore(now=self.clock.now, access_ttl=self.token_ttl)
        self.limiter = RateLimiter(self.rate_per_second, self.rate_per_day, self.clock.now)
        self.faults = FaultInjector(self.seed)
        self.stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._httpd: SandboxHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._shop: Shop | None = None
        self._factory: seeding.OrderFactory | None = None
        self.url = ""

    # ----- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind, build the shop, serve in a background thread; returns in milliseconds."""
        if self._httpd is not None:
            raise RuntimeError("sandbox already started")
        self.stopping.clear()
        httpd = SandboxHTTPServer((self.host, self.port), self)
        self.port = httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        try:
            self._build()
        except BaseException:
            httpd.server_close()
            raise
        self._httpd = httpd
        self._threads = [threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          name=f"sandbox-http-{self.port}", daemon=True)]
        if self.orders_every:
            self._threads.append(threading.Thread(target=self._tick, name=f"sandbox-orders-{self.port}", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def _build(self) -> None:
        now = self.clock.now_int()
        if self.data_dir is not None:
            from kaalwatch.sandbox.replay import load_catalog

            catalog, receipts = load_catalog(Path(self.data_dir), self.seed, self.url, now)
        else:
            catalog, receipts = seeding.build_catalog(self.seed, self.url, now), []
        self._shop = Shop(user_id=catalog.user_id, shop=catalog.shop, listings=catalog.listings,
                          images=catalog.images, personalization=catalog.personalization, receipts=receipts,
                          now=self.clock.now_int, refund_bumps_update=self.refund_bumps_update)
        # A replayed shop holds what was recorded: no seeded receipts, nothing hostile.
        seeded = self.data_dir is None
        self._factory = seeding.OrderFactory(self._shop, catalog, self.url, self.seed, self.clock.now_int,
                                             hostile=self.hostile and seeded)
        if seeded:
            seeding.seed_receipts(self._factory, now, self.receipts or 0)
            if self.hostile:
                self.add_hostile_order()

    def _tick(self) -> None:
        assert self.orders_every is not None
        while not self.stopping.wait(self.orders_every):
            self.add_order()

    def stop(self) -> None:
        """Stop serving, close every connection and join every thread the sandbox started."""
        httpd = self._httpd
        if httpd is None:
            return
        self.stopping.set()  # wakes latency faults and the order ticker
        httpd.shutdown()
        httpd.close_all()
        httpd.server_close()  # joins handler threads (block_on_close)
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self._httpd = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ----- facts ---------------------------------------------------------------------------------------

    @property
    def shop(self) -> Shop:
        """The live shop state (after :meth:`start`)."""
        if self._shop is None:
            raise RuntimeError("sandbox not started")
        return self._shop

    @property
    def shop_id(self) -> int:
        """The shop's id (after :meth:`start`)."""
        return self.shop.shop_id

    @property
    def user_id(self) -> int:
        """The seller's user id: the number before the dot of every access token."""
        return self.shop.user_id

    @property
    def api_key(self) -> str:
        """The exact ``x-api-key`` header value the sandbox accepts."""
        return f"{self.keystring}:{self.shared_secret}"

    @property
    def receipt_ids(self) -> list[int]:
        """Every receipt id, ascending."""
        with self.shop.lock:
            return sorted(self.shop.receipts)

    def receipt(self, receipt_id: int) -> JSON:
        """A copy of one receipt exactly as served."""
        return self.shop.receipt(receipt_id)

    # ----- changing the shop ---------------------------------------------------------------------------

    def add_order(
        self,
        listing_id: int | None = None,
        buyer_name: str | None = None,
        answers: Mapping[int | str, str] | None = None,
        uploads: int | Sequence[bytes] | None = None,
        *,
        quantity: int = 1,
        message: str | None = None,
        is_gift: bool = False,
        gift_message: str = "",
        extra_listing_ids: Sequence[int] = (),
        skip_optional: bool = False,
        upload_urls: Sequence[str] | None = None,
        buyer_user_id: int | None = None,
    ) -> JSON:
        """A new paid order created now; returns the receipt as served.

        ``answers`` maps question_id or question text to the answer; ``uploads`` is a number of generated
        images or a list of image bytes to serve; ``upload_urls`` puts those URLs verbatim instead;
        ``buyer_user_id`` makes it a returning buyer's.
        """
        assert self._factory is not None, "sandbox not started"
        if listing_id is None and self.data_dir is not None:
            # A replayed shop sells its recorded listings, not the seeded ones the factory picks from.
            listing_id = self._factory.rng.choice(sorted(self.shop.listings))
        spec = seeding.OrderSpec(listing_id=listing_id, buyer_name=buyer_name, answers=answers,
                                 uploads=uploads, quantity=quantity, message=message, is_gift=is_gift,
                                 gift_message=gift_message, extra_listing_ids=extra_listing_ids,
                                 skip_optional=skip_optional, upload_urls=upload_urls, buyer_user_id=buyer_user_id)
        return copy.deepcopy(self._factory.add(spec))

    def add_hostile_order(self, other_port: int | None = None) -> JSON:
        """A pet-portrait order whose upload URLs point off-sandbox (another loopback port, 10.0.0.1,
        169.254.169.254): for tests of the client's SSRF guard. Never part of the default seed."""
        port = other_port if other_port is not None else (1 if self.port != 1 else 2)
        return self.add_order(seeding.PET_LISTING, buyer_name="<img src=x onerror=alert(1)>",
                              upload_urls=seeding.hostile_urls(port),
                              message="../../../etc/passwd &#39;; DROP TABLE orders;--")

    def cancel(self, receipt_id: int) -> JSON:
        """Cancel an order (status ``Canceled``, refund recorded, update_timestamp bumped)."""
        return self.shop.cancel(receipt_id)

    def refund(self, receipt_id: int, partial: bool = False, *, bump: bool | None = None) -> JSON:
        """Refund fully or partially; ``bump=False`` leaves update_timestamp alone (open-api #513)."""
        return self.shop.refund(receipt_id, partial=partial, bump=bump)

    def complete(self, receipt_id: int) -> JSON:
        """As if the seller completed the order on Etsy: ``Completed``, shipped, delivered, bumped."""
        return self.shop.complete(receipt_id)

    def touch(self, receipt_id: int, **changes: Any) -> JSON:
        """Change fields (default: a seller note) and bump update_timestamp."""
        return self.shop.touch(receipt_id, changes or None)

    def expire_tokens(self) -> None:
        """Every access token issued so far is expired (next call: 401 invalid_token; refresh works)."""
        self.tokens.expire_tokens()

    def revoke_all_tokens(self) -> None:
        """A password change: every token dies; refresh gets 400 invalid_grant."""
        self.tokens.revoke_all()

    def inject_fault(self, status: int | None = None, latency: float = 0.0, count: int | None = None,
                     share: float | None = None, drop: bool = False,
                     paths: Sequence[str] | str | None = None) -> None:
        """Make the next ``count`` (None: all) matching calls, or a ``share`` of them, fail.

        ``status`` answers with that code and ``{"error": ...}``; ``latency`` seconds are waited first;
        ``drop`` closes the TCP connection without a response. ``paths`` are glob patterns on the path
        (e.g. ``"/v3/application/shops/*/receipts"``); admin paths are never affected.
        """
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        if isinstance(paths, str):
            paths = [paths]
        self.faults.add(Fault(status=status, latency=latency, count=count, share=share, drop=drop,
                              paths=tuple(paths) if paths is not None else None))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self.faults.clear()

    def advance(self, seconds: float) -> float:
        """Move the sandbox clock forward (expires tokens, rolls rate-limit windows); returns the new time."""
        self.clock.advance(seconds)
        return self.clock.now()

    # ----- request log ---------------------------------------------------------------------------------

    def _record(self, req: RecordedRequest) -> None:
        with self._requests_lock:
            self._requests.append(req)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every non-admin request received, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._requests_lock:
            self._requests.clear()

    def calls(self, operation: str) -> int:
        """How many requests were routed to ``operation`` (an Etsy operationId)."""
        return sum(1 for r in self.requests if r.operation == operation)

    # ----- admin over HTTP -----------------------------------------------------------------------------

    def info(self) -> JSON:
        """What ``GET /_sandbox`` shows: address, credentials, ids, listings."""
        return {"url": self.url, "keystring": self.keystring, "shared_secret": self.shared_secret,
                "x_api_key": self.api_key, "shop_id": self.shop_id, "user_id": self.user_id,
                "listing_ids": sorted(self.shop.listings), "receipt_count": len(self.shop.receipts),
                "oauth_connect": f"{self.url}/oauth/connect",
                "token_url": f"{self.url}/v3/public/oauth/token"}

    def _admin(self, method: str, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> tuple[int, Any]:
        """Dispatch ``/_sandbox/...`` (the table in :mod:`kaalwatch.sandbox`); actions without an answer say ok."""
        parts = [p for p in path.split("/") if p]
        key, rid = "/".join(parts), ""
        if len(parts) == 3 and parts[0] == "receipts":
            key, rid = f"receipts/*/{parts[2]}", parts[1]
        actions: dict[tuple[str, str], tuple[int, Callable[[], Any]]] = {
            ("GET", ""): (200, self.info),
            ("POST", "orders"): (201, lambda: self._admin_order(body)),
            ("POST", "orders/hostile"): (201, lambda: self.add_hostile_order(body.get("other_port"))),
            ("POST", "receipts/*/cancel"): (200, lambda: self.cancel(int(rid))),
            ("POST", "receipts/*/refund"): (200, lambda: self.refund(int(rid), bool(body.get("partial", False)),
                                                                     bump=body.get("bump"))),
            ("POST", "receipts/*/complete"): (200, lambda: self.complete(int(rid))),
            ("POST", "receipts/*/touch"): (200, lambda: self.touch(int(rid), **dict(body.get("changes") or {}))),
            ("POST", "tokens/expire"): (200, self.expire_tokens),
            ("POST", "tokens/revoke"): (200, self.revoke_all_tokens),
            ("POST", "faults"): (201, lambda: self.inject_fault(**body)),
            ("DELETE", "faults"): (200, self.clear_faults),
            ("GET", "faults"): (200, lambda: [vars(f) for f in self.faults.active]),
            ("GET", "requests"): (200, lambda: [dataclasses.asdict(r) for r in self.requests]),
            ("DELETE", "requests"): (200, self.clear_requests),
            ("POST", "clock/advance"): (200, lambda: {"now": self.advance(float(body.get("seconds", 0)))}),
            ("POST", "rate-limits/reset"): (200, self.limiter.reset),
        }
        if (method, key) not in actions:
            raise ShopError(404, f"no admin endpoint {method} /_sandbox/{'/'.join(parts)}")
        status, action = actions[method, key]
        result = action()
        return status, {"ok": True} if result is None else result

    def _admin_order(self, body: Mapping[str, Any]) -> JSON:
        unknown = set(body) - set(inspect.signature(self.add_order).parameters)
        if unknown:
            raise ShopError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        return self.add_order(**body)
