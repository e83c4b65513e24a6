"""The sandbox shop's in-memory state and Etsy's query semantics over it (filters, sorting, paging); no I/O.

Receipts are stored exactly as they are served (Etsy's ShopReceipt shape with real-traffic quirks), so what
a mutation writes is what the next request reads. Replayed recordings may spell timestamps differently from
one receipt to the next (epoch integers, numeric or ISO-8601 strings): filters and sorting read each
receipt's moments as epoch seconds (:func:`stamps_of`, on every query, so a receipt edited in place by the
seed or a test is never seen stale), and a mutation writes its new time in the spelling the receipt
already uses. Fields a recording may lack (``refunds``, ``shipments``, ``transactions``) are treated as
empty. Every public method takes the lock: the HTTP server, the ``--orders-every`` thread and test code
call in concurrently.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kaalwatch.etsy.timestamps import CREATED, UPDATED, first_epoch

JSON = dict[str, Any]

# Etsy accepts three spellings for each direction (see the sort_order enum in the document).
_ASC = {"asc", "ascending", "up"}
_DESC = {"desc", "descending", "down"}
# sort_on -> index into a receipt's (created, updated) stamps; None sorts on the receipt id.
_SORT_COLUMNS: dict[str, int | None] = {"created": 0, "updated": 1, "receipt_id": None}
# Documented minimum for every timestamp filter (2000-01-01).
_MIN_TS = 946684800


class ShopError(Exception):
    """An Etsy-shaped failure: HTTP ``status``, the ``{"error": message}`` body and extra ``headers``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def parse_bool(name: str, raw: str) -> bool:
    """Parse a boolean query/form value the way Etsy does (true/false, 1/0), else 400."""
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ShopError(400, f"Invalid value for {name}: expected a boolean, got {raw!r}.")


def parse_int(name: str, raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Parse an integer parameter with the document's bounds, else 400 like Etsy."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ShopError(400, f"Invalid value for {name}: expected an integer, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ShopError(400, f"Invalid value for {name}: must be greater than or equal to {minimum}.")
    if maximum is not None and value > maximum:
        raise ShopError(400, f"Invalid value for {name}: must be less than or equal to {maximum}.")
    return value


def split_list(raw: Iterable[str]) -> list[str]:
    """Etsy array parameters arrive comma-separated (``a,b``) or repeated (``x=a&x=b``): accept both."""
    out: list[str] = []
    for item in raw:
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out


def status_of(receipt: Mapping[str, Any]) -> str:
    """The receipt's status compared case-insensitively (real traffic is title-case, the doc lower-case)."""
    return str(receipt.get("status") or "").lower()


def spelled_like(example: Any, stamp: int) -> int | str:
    """``stamp`` written the way ``example`` (a recorded timestamp) is: an ISO string stays ISO, a numeric
    string stays a string, anything else becomes Etsy's epoch integer."""
    if not isinstance(example, str) or not example.strip():
        return stamp
    if example.strip().lstrip("-").replace(".", "", 1).isdigit():
        return str(stamp)
    text = datetime.fromtimestamp(stamp, UTC).isoformat()
    return text.replace("+00:00", "Z") if example.strip().endswith("Z") else text


def stamps_of(receipt: Mapping[str, Any]) -> tuple[int, int]:
    """(created, updated) in epoch seconds, whatever the spelling; updated falls back to created, then 0."""
    created = first_epoch(receipt, CREATED) or 0
    return created, first_epoch(receipt, UPDATED) or created


def _amount(money: Any) -> int:
    """The minor units of an Etsy money object; 0 for anything a recording left out or spelt oddly."""
    value = money.get("amount") if isinstance(money, Mapping) else money
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# getShopReceipts' boolean filters: what each one asks of a receipt.
_FLAGS: dict[str, Callable[[Shop, int, Mapping[str, Any]], bool]] = {
    "was_paid": lambda shop, rid, r: bool(r.get("is_paid")),
    "was_shipped": lambda shop, rid, r: bool(r.get("is_shipped")),
    "was_delivered": lambda shop, rid, r: rid in shop.delivered,
    "was_canceled": lambda shop, rid, r: status_of(r) == "canceled",
}

# getListing's includes: the field each adds and its value (the sandbox has no users, translations, videos
# or buyer prices to show).
_INCLUDES: dict[str, tuple[str, Callable[[Shop, int], Any]]] = {
    "Images": ("images", lambda shop, lid: shop.images.get(lid, [])),
    "Shop": ("shop", lambda shop, lid: shop.shop),
    "User": ("user", lambda shop, lid: None),
    "Translations": ("translations", lambda shop, lid: None),
    "Videos": ("videos", lambda shop, lid: []),
    "Personalization": ("personalization", lambda shop, lid: shop.listing_personalization(lid)),
    "BuyerPrice": ("buyer_price", lambda shop, lid: None),
}


class Shop:
    """One Etsy shop: its owner, listings (with images and personalization questions) and receipts."""

    def __init__(
        self,
        *,
        user_id: int,
        shop: JSON,
        listings: Mapping[int, JSON],
        images: Mapping[int, list[JSON]],
        personalization: Mapping[int, JSON],
        receipts: Iterable[JSON],
        now: Callable[[], int],
        refund_bumps_update: bool = True,
    ) -> None:
        self.lock = threading.RLock()
        self.user_id = user_id
        self.shop_id = int(shop["shop_id"])
        self.shop: JSON = dict(shop)
        self.listings: dict[int, JSON] = {int(k): dict(v) for k, v in listings.items()}
        self.images: dict[int, list[JSON]] = {int(k): list(v) for k, v in images.items()}
        self.personalization: dict[int, JSON] = {int(k): dict(v) for k, v in personalization.items()}
        self.receipts: dict[int, JSON] = {}
        # Facts Etsy tracks but does not serve on the receipt (was_delivered has no receipt field).
        self.delivered: set[int] = set()
        self._now = now
        self.refund_bumps_update = refund_bumps_update
        # Served files: path under /_files/ -> (content type, bytes or a zero-arg renderer).
        self.files: dict[str, tuple[str, bytes | Callable[[], bytes]]] = {}
        for receipt in receipts:
            self.put_receipt(receipt)

    # ----- reading -------------------------------------------------------------------------------------

    def query_receipts(self, params: Mapping[str, str]) -> JSON:
        """``getShopReceipts``: apply every documented filter, sort and page; ``count`` is the match total."""
        def ts(name: str) -> int | None:
            return parse_int(name, params[name], minimum=_MIN_TS) if name in params else None

        # (lowest, highest) allowed for each of a receipt's (created, updated) stamps.
        ranges = [(ts("min_created"), ts("max_created")), (ts("min_last_modified"), ts("max_last_modified"))]
        wanted = {name: parse_bool(name, params[name]) for name in _FLAGS if name in params}
        limit = parse_int("limit", params["limit"], minimum=1, maximum=100) if "limit" in params else 25
        offset = parse_int("offset", params["offset"], minimum=0) if "offset" in params else 0
        sort_on = params.get("sort_on", "created")
        if sort_on not in _SORT_COLUMNS:
            raise ShopError(400, f"Invalid value for sort_on: {sort_on!r} is not one of created, updated, receipt_id.")
        sort_order = params.get("sort_order", "desc")
        if sort_order not in _ASC | _DESC:
            raise ShopError(400, f"Invalid value for sort_order: {sort_order!r}.")

        with self.lock:
            stamps = {rid: stamps_of(r) for rid, r in self.receipts.items()}
            matches = [
                rid for rid, r in self.receipts.items()
                if all((lo is None or lo <= at) and (hi is None or at <= hi)
                       for at, (lo, hi) in zip(stamps[rid], ranges, strict=True))
                and all(_FLAGS[name](self, rid, r) == want for name, want in wanted.items())
            ]
            column = _SORT_COLUMNS[sort_on]
            # receipt_id breaks ties so paging over equal timestamps is stable, as it must be for offsets.
            matches.sort(key=lambda rid: (stamps[rid][column] if column is not None else rid, rid),
                         reverse=sort_order in _DESC)
            page = [self.receipts[rid] for rid in matches[offset : offset + limit]]
            return {"count": len(matches), "results": copy.deepcopy(page)}

    def shop_body(self) -> JSON:
        """``getShop`` body."""
        with self.lock:
            return dict(self.shop)

    def receipt(self, receipt_id: int) -> JSON:
        """``getShopReceipt`` body, or 404."""
        with self.lock:
            return copy.deepcopy(self._receipt(receipt_id))

    def transactions(self, receipt_id: int) -> JSON:
        """``getShopReceiptTransactionsByReceipt`` body."""
        with self.lock:
            txs = self._receipt(receipt_id).get("transactions") or []
            return {"count": len(txs), "results": copy.deepcopy(txs)}

    def listing(self, listing_id: int, includes: Iterable[str] = ()) -> JSON:
        """``getListing`` body with the requested associations attached."""
        with self.lock:
            base = self.listings.get(listing_id)
            if base is None:
                raise ShopError(404, f"Listing with id {listing_id} not found.")
            out = copy.deepcopy(base)
            for inc in includes:
                if inc not in _INCLUDES:
                    raise ShopError(400, f"Invalid value for includes: {inc!r}.")
                key, value = _INCLUDES[inc]
                out[key] = copy.deepcopy(value(self, listing_id))
            return out

    def listings_batch(self, listing_ids: list[int], includes: Iterable[str] = ()) -> JSON:
        """``getListingsByListingIds``: unknown ids are skipped, as Etsy does; more than 100 is a 400."""
        if len(listing_ids) > 100:
            raise ShopError(400, "Invalid value for listing_ids: at most 100 ids are allowed.")
        includes = list(includes)
        results = [self.listing(i, includes) for i in listing_ids if i in self.listings]
        return {"count": len(results), "results": results}

    def listing_images(self, listing_id: int) -> JSON:
        """``getListingImages`` body."""
        with self.lock:
            if listing_id not in self.listings:
                raise ShopError(404, f"Listing with id {listing_id} not found.")
            imgs = copy.deepcopy(self.images.get(listing_id, []))
            return {"count": len(imgs), "results": imgs}

    def listing_personalization(self, listing_id: int) -> JSON:
        """``getListingPersonalization`` body."""
        with self.lock:
            if listing_id not in self.listings:
                raise ShopError(404, f"Listing with id {listing_id} not found.")
            return copy.deepcopy(self.personalization.get(listing_id, {"personalization_questions": []}))

    # ----- changing --------------------------------------------------------------------------------------

    def put_receipt(self, receipt: JSON) -> JSON:
        """Insert or replace a receipt as served; completed receipts count as delivered."""
        with self.lock:
            rid = int(receipt["receipt_id"])
            self.receipts[rid] = receipt
            if status_of(receipt) == "completed":
                self.delivered.add(rid)
            return receipt

    def _receipt(self, receipt_id: int) -> JSON:
        r = self.receipts.get(receipt_id)
        if r is None:
            raise ShopError(404, f"Receipt with id {receipt_id} not found.")
        return r

    def _bumped(self, r: JSON) -> JSON:
        """Move ``r``'s update time to now and return the receipt as served (a copy)."""
        # Etsy sends both spellings with the same value; keep them equal, and never move backwards.
        now = max(self._now(), stamps_of(r)[1])
        for key in [key for key in UPDATED if key in r] or UPDATED:
            r[key] = spelled_like(r.get(key), now)
        return copy.deepcopy(r)

    def _now_like(self, r: JSON) -> int | str:
        """Now, spelt as this receipt spells its update time (for timestamps written inside it)."""
        return spelled_like(next((r[k] for k in UPDATED if k in r), None), self._now())

    def cancel(self, receipt_id: int) -> JSON:
        """The seller cancelled: status ``Canceled``, the payment comes back as a refund."""
        with self.lock:
            r = self._receipt(receipt_id)
            r["status"] = "Canceled"
            if r.get("is_paid"):
                refunds = r.setdefault("refunds", [])
                refunds.append(self._refund_entry(_amount(r.get("grandtotal")), r, "Order canceled"))
            return self._bumped(r)

    def refund(self, receipt_id: int, *, partial: bool = False, bump: bool | None = None) -> JSON:
        """Refund all or half; ``bump=False`` (or ``refund_bumps_update=False``) mimics open-api #513."""
        with self.lock:
            r = self._receipt(receipt_id)
            total = _amount(r.get("grandtotal"))
            refunds = r.setdefault("refunds", [])
            amount = total // 2 if partial else total - sum(_amount(x.get("amount")) for x in refunds)
            refunds.append(self._refund_entry(amount, r, "Partial refund" if partial else "Full refund"))
            r["status"] = "Partially Refunded" if partial else "Fully Refunded"
            bump = self.refund_bumps_update if bump is None else bump
            return self._bumped(r) if bump else copy.deepcopy(r)

    def _refund_entry(self, amount: int, r: JSON, reason: str) -> JSON:
        total = r.get("grandtotal")
        currency = total.get("currency_code") if isinstance(total, Mapping) else None
        return {
            "amount": {"amount": amount, "divisor": 100, "currency_code": currency or "USD"},
            "created_timestamp": self._now_like(r),
            "reason": reason,
            "note_from_issuer": None,
            "status": "Complete",
        }

    def complete(self, receipt_id: int) -> JSON:
        """As if the seller pressed *Complete order* on Etsy with the files attached."""
        with self.lock:
            r = self._receipt(receipt_id)
            now = self._now_like(r)
            r["status"] = "Completed"
            r["is_shipped"] = True
            for tx in r.get("transactions") or []:
                tx["shipped_timestamp"] = now
            self.delivered.add(receipt_id)
            return self._bumped(r)

    def touch(self, receipt_id: int, changes: Mapping[str, Any] | None = None) -> JSON:
        """Apply ``changes`` (default: a seller note) and bump ``update_timestamp``."""
        with self.lock:
            r = self._receipt(receipt_id)
            if changes:
                r.update(copy.deepcopy(dict(changes)))
            else:
                r["message_from_seller"] = f"Note updated at {self._now()}"
            return self._bumped(r)

    def update_receipt(self, receipt_id: int, *, was_shipped: bool | None, was_paid: bool | None) -> JSON:
        """``updateShopReceipt``: only the two documented flags; shipped makes it Completed."""
        with self.lock:
            r = self._receipt(receipt_id)
            if was_paid is not None:
                r["is_paid"] = was_paid
                if was_paid and status_of(r) in ("open", "payment processing"):
                    r["status"] = "Paid"
            if was_shipped is not None:
                r["is_shipped"] = was_shipped
                if was_shipped and status_of(r) == "paid":
                    r["status"] = "Completed"
            return self._bumped(r)

    def create_shipment(self, receipt_id: int, body: Mapping[str, Any]) -> JSON:
        """``createReceiptShipment``: records tracking (if any), marks shipped, 409 when cancelled."""
        tracking = body.get("tracking_code")
        carrier = body.get("carrier_name")
        if bool(tracking) != bool(carrier):
            raise ShopError(400, "tracking_code and carrier_name must be provided together.")
        with self.lock:
            r = self._receipt(receipt_id)
            if status_of(r) in ("canceled", "fully refunded"):
                raise ShopError(409, "Cannot submit tracking for a canceled or refunded receipt.")
            now = self._now_like(r)
            if tracking:
                r.setdefault("shipments", []).append(
                    {
                        "receipt_shipping_id": 900_000_000 + receipt_id % 100_000_000 + len(r.get("shipments") or []),
                        "shipment_notification_timestamp": now,
                        "carrier_name": str(carrier),
                        "tracking_code": str(tracking),
                    }
                )
            r["is_shipped"] = True
            if status_of(r) == "paid":
                r["status"] = "Completed"
            for tx in r.get("transactions") or []:
                tx["shipped_timestamp"] = now
            return self._bumped(r)
