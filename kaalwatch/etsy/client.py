"""The one module that speaks HTTP to Etsy: auth headers, token refresh, pacing, retries, typed errors.

Every request goes through :meth:`EtsyClient.request`, which

* sends ``x-api-key: keystring:shared_secret`` and the bearer token;
* refreshes the access token shortly before it expires and once after a 401, under the token file's
  cross-process lock, saving the rotated pair **before** using it (Etsy kills the old refresh token);
* paces itself below the configured budget (:mod:`kaalwatch.etsy.ratelimit`), honours ``retry-after``
  on 429, retries 5xx, timeouts and dropped connections with capped exponential backoff and jitter,
  resending the same method and body, and gives up with one clear line after ``max_retries``;
* turns Etsy's errors into :mod:`kaalwatch.errors` types whose messages say the fix.

Nothing here logs a token, a code or the shared secret; buyer data is never logged either.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import requests

from kaalwatch import __version__
from kaalwatch.errors import (
    AuthError,
    EtsyError,
    EtsyForbiddenError,
    EtsyNotFoundError,
    EtsyRateLimitError,
    GrantRevokedError,
)
from kaalwatch.etsy.ratelimit import DAY, NotBefore, RateLimiter, retry_hint
from kaalwatch.etsy.tokens import Tokens, TokenStore
from kaalwatch.loopback import is_loopback_url
from kaalwatch.settings import EtsySettings, Settings

log = logging.getLogger(__name__)

API = "/v3/application"
TOKEN_PATH = "/v3/public/oauth/token"  # noqa: S105 - a URL path
REFRESH_EARLY_SECONDS = 120.0  # refresh this long before expiry, so a long sync never starts a call with a dying token
MAX_BACKOFF_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 120.0  # a longer retry-after is a daily limit: stop instead of blocking the daemon
PAGE_LIMIT = 100
BATCH_LIMIT = 100
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
RUN_AUTH = "run `kaalwatch auth`"
# Operations whose 404 means the shop itself was not found (or not visible to this token), not one record.
SHOP_OPERATIONS = frozenset({"getShop", "getShopReceipts"})


def etsy_connect_url(settings: EtsySettings) -> str:
    """The consent page: configured, else Etsy's, else the sandbox's when the base URL is local."""
    if settings.connect_url:
        return settings.connect_url
    if is_loopback_url(settings.base_url):
        return settings.base_url.rstrip("/") + "/oauth/connect"
    return "https://www.etsy.com/oauth/connect"


@dataclass(frozen=True)
class Page:
    """One page of a paginated answer."""

    results: list[dict[str, Any]]
    count: int
    offset: int


class EtsyClient:
    """Etsy Open API v3 over one ``requests.Session``. Use as a context manager, or call :meth:`close`.

    ``calls`` counts every HTTP request sent (retries and token refreshes included): the number Etsy
    charges against the daily budget. Methods are named after Etsy's operations.
    """

    def __init__(self, etsy: EtsySettings, tokens: TokenStore, *, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 limiter: RateLimiter | None = None, rng: Callable[[], float] = random.random,
                 not_before: NotBefore | None = None) -> None:
        self.settings = etsy
        self.base_url = etsy.base_url.rstrip("/")
        self.token_store = tokens
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"kaalwatch/{__version__}"
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.limiter = limiter or RateLimiter(etsy.rate_per_second, etsy.rate_per_day, sleep=sleep)
        self.calls = 0
        self.not_before = not_before
        self._tokens: Tokens | None = None

    @classmethod
    def from_settings(cls, settings: Settings, ws: Any, **kwargs: Any) -> EtsyClient:
        """A client for the workspace: its tokens, and the "not before" recorded in its sync state."""
        kwargs.setdefault("not_before", NotBefore(ws, clock=kwargs.get("clock", time.time)))  # one clock for both
        return cls(settings.etsy, TokenStore(ws), **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> EtsyClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- plumbing

    def _api_key(self) -> str:
        if not self.settings.keystring or not self.settings.shared_secret:
            raise AuthError("the Etsy keystring and shared secret are not set",
                            hint="run `kaalwatch auth`, or set KAALWATCH_ETSY_KEYSTRING and "
                                 "KAALWATCH_ETSY_SHARED_SECRET")
        return f"{self.settings.keystring}:{self.settings.shared_secret}"

    def tokens(self) -> Tokens:
        """The current tokens (loaded once, reloaded after another process refreshed them)."""
        if self._tokens is None:
            loaded = self.token_store.load()
            if loaded is None:
                raise AuthError("the Etsy shop is not connected", hint=RUN_AUTH)
            if loaded.base_url and loaded.base_url.rstrip("/") != self.base_url:
                raise AuthError(f"the saved Etsy connection belongs to {loaded.base_url}, not {self.base_url}",
                                hint=RUN_AUTH)
            self._tokens = loaded
        return self._tokens

    def _bearer(self) -> str:
        tokens = self.tokens()
        if tokens.expires_within(REFRESH_EARLY_SECONDS, self.clock()):
            tokens = self.refresh(stale=tokens.access_token)
        return tokens.access_token

    def refresh(self, *, stale: str | None = None) -> Tokens:
        """Refresh under the cross-process lock; a pair another process already rotated is reused as is."""
        with self.token_store.lock():
            current = self.token_store.load()
            if current is None:
                raise AuthError("the Etsy shop is not connected", hint=RUN_AUTH)
            if current.access_token != stale and not current.expires_within(REFRESH_EARLY_SECONDS, self.clock()):
                self._tokens = current  # another process refreshed while we waited for the lock
                return current
            body = self.request("POST", TOKEN_PATH, operation="oauthToken", bearer=False, data={
                "grant_type": "refresh_token", "client_id": self.settings.keystring,
                "refresh_token": current.refresh_token,
            })
            rotated = current.rotated(body, self.clock())
            # Persist before anything else: the refresh token we just used is dead on Etsy's side.
            self.token_store.save(rotated)
            self._tokens = rotated
            log.info("Etsy access token refreshed")
            return rotated

    def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """OAuth code → token answer (form-encoded, as Etsy requires)."""
        return self.request("POST", TOKEN_PATH, operation="oauthToken", bearer=False, data={
            "grant_type": "authorization_code", "client_id": self.settings.keystring,
            "redirect_uri": redirect_uri, "code": code, "code_verifier": verifier,
        })

    def request(self, method: str, path: str, *, operation: str, params: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None, json: dict[str, Any] | None = None,
                bearer: bool = True) -> Any:
        """One Etsy call with refresh-on-401 (once) and the retry policy; returns the parsed JSON."""
        url = self.base_url + path
        refreshed = False
        attempt = 0
        last_problem = ""
        server_error = ""  # Etsy's own words on the last 5xx: reported as its failure, not as silence
        while True:
            headers = {"x-api-key": self._api_key(), "Accept": "application/json"}
            if bearer:
                headers["Authorization"] = f"Bearer {self._bearer()}"
            self._check_not_before()
            self.limiter.acquire()
            self.calls += 1
            try:
                resp = self.session.request(method, url, params=params, data=data, json=json, headers=headers,
                                            timeout=self.settings.timeout_seconds, allow_redirects=False)
            except (requests.Timeout, requests.ConnectionError) as exc:
                last_problem = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                server_error, resp = "", None
            if resp is not None:
                self.limiter.observe(resp.headers)
                status = resp.status_code
                if 200 <= status < 300:
                    return _json(resp, operation)
                body = _json_or_empty(resp)
                if status == 401 and bearer and not refreshed:
                    refreshed = True  # once: a second 401 means the grant is gone, not just expired
                    self.refresh(stale=headers["Authorization"].split(" ", 1)[1])
                    continue
                if status == 429:
                    wait = self._rate_limited(resp, body, operation)
                    if attempt >= self.settings.max_retries:
                        raise EtsyError(f"Etsy kept answering 429 to {operation}", hint="try again in a minute")
                    attempt += 1
                    self.sleep(wait)
                    continue
                if status not in RETRYABLE_STATUS:
                    raise self._error(status, body, operation, bearer)
                last_problem = f"HTTP {status}"
                server_error = _short(str(body.get("error") or "")) or "no details"
            if attempt >= self.settings.max_retries:
                if server_error:
                    raise EtsyError(f"Etsy's server failed {operation} with {last_problem} ({server_error}); "
                                    f"gave up after {_attempts(attempt + 1)}",
                                    hint="the fault is on Etsy's side: check its status page "
                                         "(https://status.etsy.com) and try again later")
                raise EtsyError(f"Etsy did not answer {operation} after {_attempts(attempt + 1)} ({last_problem})",
                                hint="check the internet connection or Etsy's status page, then try again")
            delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempt) * (0.5 + self.rng() / 2)  # jitter: no herd
            attempt += 1
            log.debug("Etsy %s: %s; retry %d in %.1fs", operation, last_problem, attempt, delay)
            self.sleep(delay)

    def _check_not_before(self) -> None:
        """Raise before sending anything while a recorded "not before" (any process's) has not passed."""
        until = self.not_before.until() if self.not_before is not None else None
        if until is not None:
            wait = until - self.clock()
            raise EtsyRateLimitError("Etsy's daily request limit is used up", hint=retry_hint(wait), retry_at=until)

    def _rate_limited(self, resp: requests.Response, body: dict[str, Any], operation: str) -> float:
        """Seconds to wait after a 429, or raise when it is the daily limit."""
        message = str(body.get("error") or "")
        retry_after = _float(resp.headers.get("retry-after"))
        daily = "daily" in message.lower() or (retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS)
        if daily:
            wait = retry_after if retry_after is not None else DAY
            self.limiter.day_exhausted(wait)
            if self.not_before is not None:
                self.not_before.set(self.clock() + wait, "Etsy's daily request limit is used up")
            raise EtsyRateLimitError("Etsy's daily request limit is used up", hint=retry_hint(wait),
                                     retry_at=time.time() + wait)
        # Without the header it is the per-second limit: the next window.
        return retry_after if retry_after is not None else min(MAX_BACKOFF_SECONDS, 1.0 + self.rng())

    def _error(self, status: int, body: dict[str, Any], operation: str, bearer: bool) -> EtsyError:
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
        said = _short(error + (f": {description}" if description else ""))
        if error == "invalid_grant" or (status == 401 and bearer):
            return GrantRevokedError(f"Etsy revoked the connection ({said or 'HTTP 401'})", hint=RUN_AUTH)
        if status == 401:
            return AuthError(f"Etsy refused the credentials for {operation} ({said})", hint=RUN_AUTH)
        if status == 403:
            lowered = error.lower()
            if "shared secret" in lowered or "api key" in lowered or "x-api-key" in lowered:
                return EtsyForbiddenError(f"Etsy refused the app key ({said})",
                                          hint="set both etsy.keystring and etsy.shared_secret "
                                               "(KAALWATCH_ETSY_KEYSTRING / KAALWATCH_ETSY_SHARED_SECRET)")
            if "scope" in lowered:
                missing = _scope_in(error) or "a scope"
                return EtsyForbiddenError(f"the Etsy connection lacks {missing} for {operation}",
                                          hint=f"add {missing} to etsy.scopes and {RUN_AUTH} again")
            return EtsyForbiddenError(f"Etsy refused {operation} ({said or 'HTTP 403'})",
                                      hint="check the shop and the app's permissions")
        if status == 404 and operation in SHOP_OPERATIONS:
            return EtsyNotFoundError(f"Etsy found no such shop for {operation} ({said or 'HTTP 404'})",
                                     hint="the saved shop id may belong to another account, or the connection "
                                          f"lacks transactions_r: check `kaalwatch auth status`, then {RUN_AUTH} "
                                          "with the shop owner's account")
        if status == 404:
            return EtsyNotFoundError(f"Etsy has no such resource for {operation} ({said or 'HTTP 404'})")
        if status >= 500:
            return EtsyError(f"Etsy's server failed {operation} with HTTP {status} ({said or 'no details'})",
                             hint="the fault is on Etsy's side: try again later")
        return EtsyError(f"Etsy rejected {operation} with HTTP {status} ({said or 'no details'})")

    # --------------------------------------------------------------------------------------- operations

    def get_me(self) -> dict[str, Any]:
        return self.request("GET", f"{API}/users/me", operation="getMe")

    def get_shop(self, shop_id: int) -> dict[str, Any]:
        return self.request("GET", f"{API}/shops/{int(shop_id)}", operation="getShop")

    def token_scopes(self, access_token: str | None = None) -> list[str]:
        token = access_token or self.tokens().access_token
        body = self.request("POST", f"{API}/scopes", operation="tokenScopes", data={"token": token}, bearer=False)
        return [str(s) for s in body.get("scopes") or []]

    def get_shop_receipts(self, shop_id: int, *, offset: int = 0, limit: int = PAGE_LIMIT,
                          **filters: int | str | bool | None) -> Page:
        params = {"limit": limit, "offset": offset} | {  # Etsy reads booleans as "true" / "false"
            key: str(value).lower() if isinstance(value, bool) else value for key, value in filters.items()
            if value is not None}
        body = self.request("GET", f"{API}/shops/{int(shop_id)}/receipts", operation="getShopReceipts",
                            params=params)
        return Page(results=_results(body), count=_count(body), offset=offset)

    def iter_receipt_pages(self, shop_id: int, *, limit: int = PAGE_LIMIT,
                           **filters: int | str | bool | None) -> Iterator[Page]:
        """Every page of ``getShopReceipts`` with these filters, until ``offset >= count``."""
        offset = 0
        while True:
            page = self.get_shop_receipts(shop_id, offset=offset, limit=limit, **filters)
            yield page
            offset += len(page.results)
            if not page.results or offset >= page.count:
                return

    def get_listings_by_listing_ids(self, listing_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Listings with their images, in batches of 100 (one call each); unknown ids are simply absent."""
        ids = sorted({int(i) for i in listing_ids})
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start:start + BATCH_LIMIT]
            params = {"listing_ids": ",".join(str(i) for i in chunk), "includes": "Images"}
            body = self.request("GET", f"{API}/listings/batch", operation="getListingsByListingIds", params=params)
            out.extend(_results(body))
        return out

    def get_listing_personalization(self, listing_id: int) -> dict[str, Any]:
        return self.request("GET", f"{API}/listings/{int(listing_id)}/personalization",
                            operation="getListingPersonalization")

    def create_receipt_shipment(self, shop_id: int, receipt_id: int,
                                note_to_buyer: str | None = None) -> dict[str, Any]:
        """Mark a receipt shipped (no tracking: Etsy emails the buyer). Needs ``transactions_w``."""
        body = {"note_to_buyer": note_to_buyer} if note_to_buyer else {}
        return self.request("POST", f"{API}/shops/{int(shop_id)}/receipts/{int(receipt_id)}/tracking",
                            operation="createReceiptShipment", json=body)


def _json(resp: requests.Response, operation: str) -> Any:
    if not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError:
        raise EtsyError(f"Etsy answered {operation} with something that is not JSON",
                        hint="check etsy.base_url") from None


def _json_or_empty(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _results(body: Any) -> list[dict[str, Any]]:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise EtsyError("Etsy's answer had no results list", hint="check etsy.base_url")
    return [r for r in results if isinstance(r, dict)]


def _count(body: Any) -> int:
    count = body.get("count") if isinstance(body, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scope_in(text: str) -> str | None:
    match = re.search(r"\b([a-z]+_[rwd])\b", text)
    return match.group(1) if match else None
