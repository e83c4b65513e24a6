"""``--data DIR``: build the sandbox shop from JSON files in Etsy's own response format (recorded traffic).

Each ``*.json`` file is recognised by its shape, so a saved response can be dropped in unchanged:

* a ``getShopReceipts`` page (``{"count", "results": [receipts]}``) or a single ``getShopReceipt`` body;
* a ``getListing`` body (its ``images``/``personalization`` associations are used when present) or a
  ``getListingsByListingIds`` page;
* a ``getListingImages`` page (images carry their ``listing_id``);
* a ``getListingPersonalization`` body (``{"personalization_questions": [...]}``): the listing id is the
  first number in the file name, e.g. ``personalization_1500000001.json``;
* a ``getShop`` body and a ``getMe`` body (``{"user_id", "shop_id"}``).

Missing pieces fall back to the seeded catalog (so replaying only receipts still gives a usable shop).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaalwatch.errors import ConfigError
from kaalwatch.sandbox import seed as seeding
from kaalwatch.sandbox.shop import JSON, Shop


def _kind(body: Any) -> str:
    if isinstance(body, dict) and "personalization_questions" in body:
        return "personalization"
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        first = body["results"][0] if body["results"] else {}
        if "receipt_id" in first and "transaction_id" not in first:
            return "receipts"
        if "listing_image_id" in first and "title" not in first:
            return "images"
        if "listing_id" in first and "title" in first:
            return "listings"
        return "empty"
    if isinstance(body, dict) and "receipt_id" in body:
        return "receipt"
    if isinstance(body, dict) and "listing_id" in body and "title" in body:
        return "listing"
    if isinstance(body, dict) and "shop_name" in body:
        return "shop"
    if isinstance(body, dict) and set(body) == {"user_id", "shop_id"}:
        return "me"
    return "unknown"


def load_shop(data_dir: Path, seed: int, base_url: str, now: int, now_fn: Callable[[], int],
              refund_bumps_update: bool) -> tuple[Shop, seeding.Catalog]:
    """Read every JSON file of ``data_dir`` into a :class:`Shop` (and a catalog for new orders)."""
    if not data_dir.is_dir():
        raise ConfigError(f"sandbox data directory not found: {data_dir}")
    catalog = seeding.build_catalog(seed, base_url, now)
    listings: dict[int, JSON] = {}
    images: dict[int, list[JSON]] = {}
    personalization: dict[int, JSON] = {}
    receipts: list[JSON] = []
    shop: JSON | None = None
    me: JSON | None = None
    for path in sorted(data_dir.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read sandbox data file {path.name}: {err}") from None
        kind = _kind(body)
        if kind == "receipts":
            receipts.extend(body["results"])
        elif kind == "receipt":
            receipts.append(body)
        elif kind in ("listing", "listings"):
            for item in body["results"] if kind == "listings" else [body]:
                item = dict(item)
                lid = int(item["listing_id"])
                if "images" in item:
                    images[lid] = item.pop("images")
                if item.get("personalization"):
                    personalization[lid] = item.pop("personalization")
                for assoc in ("shop", "user", "videos", "translations", "inventory", "buyer_price",
                              "shipping_profile", "personalization"):
                    item.pop(assoc, None)
                listings[lid] = item
        elif kind == "images":
            for img in body["results"]:
                images.setdefault(int(img["listing_id"]), []).append(img)
        elif kind == "personalization":
            m = re.search(r"\d+", path.stem)
            if m is None:
                raise ConfigError(f"{path.name}: name a personalization file after its listing id")
            personalization[int(m.group())] = body
        elif kind == "shop":
            shop = body
        elif kind == "me":
            me = body
        elif kind != "empty":
            raise ConfigError(f"{path.name}: not a recognised Etsy response body")
    if shop is None:
        shop = dict(catalog.shop)
        if me is not None:
            shop["shop_id"], shop["user_id"] = me["shop_id"], me["user_id"]
        elif receipts:
            shop["user_id"] = receipts[0].get("seller_user_id", shop["user_id"])
    user_id = int(shop.get("user_id") or catalog.user_id)
    if listings:
        catalog.listings, catalog.images = listings, {lid: images.get(lid, []) for lid in listings}
        catalog.personalization = personalization
    else:
        catalog.personalization.update(personalization)
    catalog.user_id, catalog.shop = user_id, shop
    result = Shop(user_id=user_id, shop=shop, listings=catalog.listings, images=catalog.images,
                  personalization=catalog.personalization, receipts=receipts, now=now_fn,
                  refund_bumps_update=refund_bumps_update)
    return result, catalog
