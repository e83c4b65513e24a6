"""``--data DIR``: build the sandbox shop from JSON files in Etsy's own response format (recorded traffic).

Every ``*.json`` file is placed by its shape, so a saved response can be dropped in unchanged. A body may
be a page (``{"count", "results": [...]}``), a bare JSON array (what client libraries hand back) or a
single object, holding any of:

* receipts (``getShopReceipts`` / ``getShopReceipt``);
* transactions (``getShopReceiptTransactionsByReceipt`` / ``getShopReceiptTransaction``): attached to
  their receipt by ``receipt_id`` (replacing the embedded line item of the same ``transaction_id``), so the
  receipt must be in one of the files too;
* listings (``getListing``, ``getListingsByListingIds``; ``images``/``personalization`` associations are
  used when present) and listing images (``getListingImages``; images carry their ``listing_id``);
* personalization (``getListingPersonalization``, ``{"personalization_questions": [...]}``, or a bare
  array of questions): the listing id is the first number in the file name, e.g.
  ``personalization_1500000001.json``;
* a ``getShop`` body and a ``getMe`` body (``{"user_id", "shop_id"}``).

Timestamps stay as recorded (epoch integers, numeric or ISO-8601 strings, mixed): the shop reads them
whatever the spelling (:mod:`kaalwatch.sandbox.shop`). A body that is none of these — an error answer, an
Etsy API v2 body, anything else — stops the start with one line naming the file and what it looked like.
Missing pieces fall back to the seeded catalog (so replaying only receipts still gives a usable shop).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kaalwatch.errors import ConfigError
from kaalwatch.sandbox import seed as seeding
from kaalwatch.sandbox.shop import JSON, stamps_of

# Each kind by the keys that tell it apart, most specific first (a transaction also has a receipt_id).
_KINDS = (("transaction", {"transaction_id"}), ("image", {"listing_image_id"}), ("receipt", {"receipt_id"}),
          ("listing", {"listing_id", "title"}), ("question", {"question_id", "question_text"}))
# The id each kind is filed under: it must be a whole number (as an int or a numeric string).
_ID_OF = {"receipt": "receipt_id", "transaction": "receipt_id", "listing": "listing_id", "image": "listing_id"}
PLACEABLE = "receipts, transactions, listings, listing images, personalization questions, a shop or getMe"
# Associations getListing may embed; the sandbox serves them from its own tables instead.
_ASSOCIATIONS = ("shop", "user", "videos", "translations", "inventory", "buyer_price", "shipping_profile",
                 "personalization", "images")


def looked_like(value: Any) -> str:
    """A short description of a JSON value for an error line: its keys or types, never its text."""
    if isinstance(value, dict):
        keys = sorted(map(str, value))
        return f"an object with keys {', '.join(keys[:8])}{', …' if len(keys) > 8 else ''}" if keys \
            else "an empty object"
    if isinstance(value, list):
        kinds = sorted({_json_type(v) for v in value})
        return f"a list of {len(value)} ({', '.join(kinds)})" if value else "an empty list"
    return f"a JSON {_json_type(value)}"


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _is_v2(item: dict[str, Any]) -> bool:
    """Etsy API v2 (shut down in 2022): ``…_tsz`` times and no v3 timestamp beside them."""
    return any(k.endswith("_tsz") for k in item) and not any(k.endswith("_timestamp") for k in item)


def item_kind(item: Any) -> str | None:
    """What one object of a body is, or None when it is nothing the sandbox can place."""
    if not isinstance(item, dict):
        return None
    if _is_v2(item):
        return "v2"
    return next((kind for kind, keys in _KINDS if keys <= item.keys()), None)


@dataclass
class _Loaded:
    """Everything read from the files, before it becomes a :class:`Shop`."""

    receipts: dict[int, JSON] = field(default_factory=dict)
    transactions: list[tuple[str, JSON]] = field(default_factory=list)  # (file name, transaction)
    listings: dict[int, JSON] = field(default_factory=dict)
    images: dict[int, list[JSON]] = field(default_factory=dict)
    personalization: dict[int, JSON] = field(default_factory=dict)
    shop: JSON | None = None
    me: JSON | None = None

    def add_receipt(self, receipt: JSON) -> None:
        # The same receipt saved twice (a page and a single body): the newer state wins.
        rid = int(receipt["receipt_id"])
        old = self.receipts.get(rid)
        if old is None or stamps_of(receipt)[1] >= stamps_of(old)[1]:
            self.receipts[rid] = receipt

    def add_listing(self, listing: JSON) -> None:
        item = dict(listing)
        lid = int(item["listing_id"])
        if isinstance(item.get("images"), list):
            self.add_images(lid, item["images"])
        if isinstance(item.get("personalization"), dict):
            self.personalization[lid] = item["personalization"]
        for name in _ASSOCIATIONS:
            item.pop(name, None)
        self.listings[lid] = item

    def add_images(self, listing_id: int, images: list[JSON]) -> None:
        # A listing's embedded images and its getListingImages page name the same images: keep one each.
        kept = [i for i in self.images.get(listing_id, [])
                if i.get("listing_image_id") not in {n.get("listing_image_id") for n in images}]
        self.images[listing_id] = [*kept, *images]

    def attach_transactions(self) -> None:
        """Each transaction into its receipt, in place of the embedded copy with the same id."""
        for name, tx in self.transactions:
            rid, tid = tx["receipt_id"], tx.get("transaction_id")
            receipt = self.receipts.get(int(rid))
            if receipt is None:
                raise ConfigError(f"sandbox data file {name}: transaction {tid} belongs to receipt {rid}, which no "
                                  "file holds", hint="add that receipt's getShopReceipt(s) body to the folder")
            lines = [t for t in receipt.get("transactions") or [] if t.get("transaction_id") != tid]
            receipt["transactions"] = [*lines, tx]


def _refuse(name: str, what: str) -> ConfigError:
    return ConfigError(f"sandbox data file {name}: {what}",
                       hint=f"save {PLACEABLE} exactly as Etsy's v3 API returned them")


def _place(loaded: _Loaded, path: Path, body: Any) -> None:
    """Put one file's body where it belongs, or raise a :class:`ConfigError` naming the file."""
    name = path.name
    if isinstance(body, dict):
        if "error" in body and "results" not in body:
            raise _refuse(name, f"an Etsy error answer ({str(body['error'])[:80]!r}), not data")
        if isinstance(body.get("type"), str) and ("params" in body or "pagination" in body):
            raise _refuse(name, f"an Etsy API v2 body (type {body['type'][:40]!r}); v2 was shut down in 2022")
        if isinstance(body.get("personalization_questions"), list):
            loaded.personalization[_listing_id_of(path)] = body
            return
        if isinstance(body.get("results"), list):
            items = body["results"]
        elif item_kind(body) is None and "shop_name" in body and "shop_id" in body:
            loaded.shop = body
            return
        elif item_kind(body) is None and {"user_id", "shop_id"} <= set(body):
            loaded.me = body
            return
        else:
            items = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise _refuse(name, f"{looked_like(body)}, not an Etsy response body")
    questions: list[JSON] = []
    for index, item in enumerate(items):
        kind = item_kind(item)
        where = "the body" if item is body else f"item {index + 1} of {len(items)}"
        if kind is None:
            raise _refuse(name, f"{where} is {looked_like(item)}, which is none of {PLACEABLE}")
        if kind == "v2":
            raise _refuse(name, f"{where} is an Etsy API v2 object (…_tsz times); v2 was shut down in 2022")
        key = _ID_OF.get(kind)
        if key is not None and not str(item.get(key)).isdigit():
            raise _refuse(name, f"{where} has {key} {str(item.get(key))[:30]!r}, not a whole number")
        if kind == "receipt":
            loaded.add_receipt(item)
        elif kind == "transaction":
            loaded.transactions.append((name, item))
        elif kind == "listing":
            loaded.add_listing(item)
        elif kind == "image":
            loaded.add_images(int(item["listing_id"]), [item])
        else:
            questions.append(item)
    if questions:
        loaded.personalization[_listing_id_of(path)] = {"personalization_questions": questions}


def _listing_id_of(path: Path) -> int:
    m = re.search(r"\d+", path.stem)
    if m is None:
        raise ConfigError(f"sandbox data file {path.name}: personalization questions, but no listing id in the "
                          "file name", hint="name it after its listing, e.g. personalization_1500000001.json")
    return int(m.group())


def read_dir(data_dir: Path) -> _Loaded:
    """Every ``*.json`` file of ``data_dir``, placed (see the module docstring)."""
    if not data_dir.is_dir():
        raise ConfigError(f"sandbox data directory not found: {data_dir}")
    files = sorted(p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if not files:
        raise ConfigError(f"no .json files in the sandbox data directory {data_dir}",
                          hint="save Etsy response bodies there, one per file")
    loaded = _Loaded()
    for path in files:
        try:
            body = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM from Windows editors is harmless
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read sandbox data file {path.name}: {err}") from None
        _place(loaded, path, body)
    loaded.attach_transactions()
    return loaded


def load_catalog(data_dir: Path, seed: int, base_url: str, now: int) -> tuple[seeding.Catalog, list[JSON]]:
    """Every JSON file of ``data_dir`` as the shop's catalog (for new orders too) and its receipts."""
    loaded = read_dir(data_dir)
    catalog = seeding.build_catalog(seed, base_url, now)
    shop = loaded.shop
    if shop is None:
        shop = dict(catalog.shop)
        if loaded.me is not None:
            shop["shop_id"], shop["user_id"] = loaded.me["shop_id"], loaded.me["user_id"]
        elif loaded.receipts:
            first = next(iter(loaded.receipts.values()))
            shop["user_id"] = first.get("seller_user_id", shop["user_id"])
    user_id = int(shop.get("user_id") or catalog.user_id)
    if loaded.listings:
        catalog.listings = loaded.listings
        catalog.images = {lid: loaded.images.get(lid, []) for lid in loaded.listings}
        catalog.personalization = loaded.personalization
    else:
        catalog.images.update(loaded.images)
        catalog.personalization.update(loaded.personalization)
    catalog.user_id, catalog.shop = user_id, shop
    return catalog, list(loaded.receipts.values())
