"""The sandbox shop's in-memory state and Etsy's query semantics over it (filters, sorting, paging); no I/O.

Receipts are stored exactly as they are served (Etsy's ShopReceipt shape with real-traffic quirks), so what
a mutation writes is what the next request reads. Every public method takes the lock: the HTTP server,
the ``--orders-every`` thread and test code call in concurrently.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

JSON = dict[str, Any]

# Etsy accepts three spellings for each direction (see the sort_order enum in the document).
_ASC = {"asc", "ascending", "up"}
_DESC = {"desc", "descending", "down"}
_SORT_KEYS = {"created": "create_timestamp", "updated": "update_timestamp", "receipt_id": "receipt_id"}
# Documented minimum for every timestamp filter (2000-01-01).
_MIN_TS = 946684800
VALID_INCLUDES = ("Images", "Shop", "User", "Translations", "Videos", "Personalization", "BuyerPrice")


class ShopError(Exception):
    """An Etsy-shaped failure: HTTP ``status`` and the ``{"error": message}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        self.shop = dict(shop)
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

        def flag(name: str) -> bool | None:
            return parse_bool(name, params[name]) if name in params else None

        min_created, max_created = ts("min_created"), ts("max_created")
        min_mod, max_mod = ts("min_last_modified"), ts("max_last_modified")
        was_paid, was_shipped = flag("was_paid"), flag("was_shipped")
        was_delivered, was_canceled = flag("was_delivered"), flag("was_canceled")
        limit = parse_int("limit", params["limit"], minimum=1, maximum=100) if "limit" in params else 25
        offset = parse_int("offset", params["offset"], minimum=0) if "offset" in params else 0
        sort_on = params.get("sort_on", "created")
        if sort_on not in _SORT_KEYS:
            raise ShopError(400, f"Invalid value for sort_on: {sort_on!r} is not one of created, updated, receipt_id.")
        sort_order = params.get("sort_order", "desc")
        if sort_order not in _ASC | _DESC:
            raise ShopError(400, f"Invalid value for sort_order: {sort_order!r}.")

        with self.lock:
            matches = []
            for rid, r in self.receipts.items():
                created, updated = r["create_timestamp"], r["update_timestamp"]
                if min_created is not None and created < min_created:
                    continue
                if max_created is not None and created > max_created:
                    continue
                if min_mod is not None and updated < min_mod:
                    continue
                if max_mod is not None and updated > max_mod:
                    continue
                if was_paid is not None and bool(r["is_paid"]) != was_paid:
                    continue
                if was_shipped is not None and bool(r["is_shipped"]) != was_shipped:
                    continue
                if was_delivered is not None and (rid in self.delivered) != was_delivered:
                    continue
                if was_canceled is not None and (status_of(r) == "canceled") != was_canceled:
                    continue
                matches.append(r)
            key = _SORT_KEYS[sort_on]
            # receipt_id breaks ties so paging over equal timestamps is stable, as it must be for offsets.
            matches.sort(key=lambda r: (r[key], r["receipt_id"]), reverse=sort_order in _DESC)
            page = matches[offset : offset + limit]
            return {"count": len(matches), "results": copy.deepcopy(page)}

    def receipt(self, receipt_id: int) -> JSON:
        """``getShopReceipt`` body, or 404."""
        with self.lock:
            return copy.deepcopy(self._receipt(receipt_id))

    def transactions(self, receipt_id: int) -> JSON:
        """``getShopReceiptTransactionsByReceipt`` body."""
        with self.lock:
            txs = self._receipt(receipt_id)["transactions"]
            return {"count": len(txs), "results": copy.deepcopy(txs)}

    def listing(self, listing_id: int, includes: Iterable[str] = ()) -> JSON:
        """``getListing`` body with the requested associations attached."""
        with self.lock:
            base = self.listings.get(listing_id)
            if base is None:
                raise ShopError(404, f"Listing with id {listing_id} not found.")
            out = copy.deepcopy(base)
            for inc in includes:
                if inc not in VALID_INCLUDES:
                    raise ShopError(400, f"Invalid value for includes: {inc!r}.")
                if inc == "Images":
                    out["images"] = copy.deepcopy(self.images.get(listing_id, []))
                elif inc == "Shop":
                    out["shop"] = copy.deepcopy(self.shop)
                elif inc == "Personalization":
                    out["personalization"] = copy.deepcopy(
                        self.personalization.get(listing_id, {"personalization_questions": []})
                    )
                elif inc == "Videos":
                    out["videos"] = []
                elif inc == "Translations":
                    out["translations"] = None
                elif inc == "User":
                    out["user"] = None
                elif inc == "BuyerPrice":
                    out["buyer_price"] = None
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

    def _bump(self, r: JSON) -> None:
        # Etsy sends both spellings with the same value; keep them equal, and never move backwards.
        now = max(self._now(), r["update_timestamp"])
        r["update_timestamp"] = r["updated_timestamp"] = now

    def set_status(self, receipt_id: int, status: str) -> JSON:
        """Set the title-case status and bump ``update_timestamp``."""
        with self.lock:
            r = self._receipt(receipt_id)
            r["status"] = status
            self._bump(r)
            return copy.deepcopy(r)

    def cancel(self, receipt_id: int) -> JSON:
        """The seller cancelled: status ``Canceled``, the payment comes back as a refund."""
        with self.lock:
            r = self._receipt(receipt_id)
            r["status"] = "Canceled"
            if r["is_paid"]:
                r["refunds"].append(self._refund_entry(r["grandtotal"]["amount"], r, "Order canceled"))
            self._bump(r)
            return copy.deepcopy(r)

    def refund(self, receipt_id: int, *, partial: bool = False, bump: bool | None = None) -> JSON:
        """Refund all or half; ``bump=False`` (or ``refund_bumps_update=False``) mimics open-api #513."""
        with self.lock:
            r = self._receipt(receipt_id)
            total = r["grandtotal"]["amount"]
            amount = total // 2 if partial else total - sum(x["amount"]["amount"] for x in r["refunds"])
            r["refunds"].append(self._refund_entry(amount, r, "Partial refund" if partial else "Full refund"))
            r["status"] = "Partially Refunded" if partial else "Fully Refunded"
            if self.refund_bumps_update if bump is None else bump:
                self._bump(r)
            return copy.deepcopy(r)

    def _refund_entry(self, amount: int, r: JSON, reason: str) -> JSON:
        return {
            "amount": {"amount": amount, "divisor": 100, "currency_code": r["grandtotal"]["currency_code"]},
            "created_timestamp": self._now(),
            "reason": reason,
            "note_from_issuer": None,
            "status": "Complete",
        }

    def complete(self, receipt_id: int) -> JSON:
        """As if the seller pressed *Complete order* on Etsy with the files attached."""
        with self.lock:
            r = self._receipt(receipt_id)
            now = self._now()
            r["status"] = "Completed"
            r["is_shipped"] = True
            for tx in r["transactions"]:
                tx["shipped_timestamp"] = now
            self.delivered.add(receipt_id)
            self._bump(r)
            return copy.deepcopy(r)

    def touch(self, receipt_id: int, changes: Mapping[str, Any] | None = None) -> JSON:
        """Apply ``changes`` (default: a seller note) and bump ``update_timestamp``."""
        with self.lock:
            r = self._receipt(receipt_id)
            if changes:
                r.update(copy.deepcopy(dict(changes)))
            else:
                r["message_from_seller"] = f"Note updated at {self._now()}"
            self._bump(r)
            return copy.deepcopy(r)

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
            self._bump(r)
            return copy.deepcopy(r)

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
            now = self._now()
            if tracking:
                r["shipments"].append(
                    {
                        "receipt_shipping_id": 900_000_000 + receipt_id % 100_000_000 + len(r["shipments"]),
                        "shipment_notification_timestamp": now,
                        "carrier_name": str(carrier),
                        "tracking_code": str(tracking),
                    }
                )
            r["is_shipped"] = True
            if status_of(r) == "paid":
                r["status"] = "Completed"
            for tx in r["transactions"]:
                tx["shipped_timestamp"] = now
            self._bump(r)
            return copy.deepcopy(r)
