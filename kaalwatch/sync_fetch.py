"""Steps 1, 2 and 5 of a sync pass (see :mod:`kaalwatch.sync`): pages of receipts since the high-water mark,
the listings of receipts that become new orders, and the open orders read again now and then."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from kaalwatch.errors import EtsyError, EtsyNotFoundError, KaalwatchError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.parse import (
    EtsyReceipt,
    ListingInfo,
    ParseError,
    parse_listing,
    parse_questions,
    parse_receipt,
    updated_epoch,
)
from kaalwatch.settings import SyncSettings
from kaalwatch.store import Workspace

log = logging.getLogger("kaalwatch.sync")

MIN_TIMESTAMP = 946_684_800  # Etsy refuses timestamp filters before 2000-01-01

Page = tuple[list[EtsyReceipt], int]  # the parsed receipts and the highest update time among them


class Fetcher:
    """Reads from Etsy for one pass; unreadable receipts and listings go to ``errors``, and an Etsy error that
    ends fetching early is kept in ``stopped`` (the pages fetched before it are still applied)."""

    def __init__(self, client: EtsyClient, settings: SyncSettings, errors: list[str], now: Callable[[], datetime]):
        self.client = client
        self.settings = settings
        self.errors = errors
        self.now = now
        self.listings: dict[int, ListingInfo] = {}
        self.stopped: EtsyError | None = None
        self.total = 0  # receipts the first query matches (for the progress bar)

    def filters(self, high_water: float | None, since: datetime | None) -> dict[str, Any]:
        base: dict[str, Any] = {"sort_on": "updated", "sort_order": "asc"}
        if since is None and high_water is not None and high_water > 0:
            margin = self.settings.margin_minutes * 60
            return {**base, "min_last_modified": max(MIN_TIMESTAMP, int(high_water - margin))}
        start = since or self.now() - timedelta(days=self.settings.first_import_days)
        return {**base, "min_created": max(MIN_TIMESTAMP, int(start.timestamp()))}

    def pages(self, shop_id: int, filters: dict[str, Any]) -> list[Page]:
        pages: list[Page] = []
        try:
            for page in self.client.iter_receipt_pages(shop_id, **filters):
                parsed: list[EtsyReceipt] = []
                top = 0
                for raw in page.results:
                    top = max(top, updated_epoch(raw))  # any spelling: an unread one would reset the mark
                    try:
                        parsed.append(parse_receipt(raw))
                    except ParseError as exc:
                        self.errors.append(str(exc))
                        log.warning("skipped an unreadable receipt: %s", exc)
                pages.append((parsed, top))
                self.total = page.count
        except EtsyError as exc:
            self.stopped = exc
        return pages

    def fetch_listings(self, receipts: Iterable[EtsyReceipt]) -> None:
        """One ``getListingsByListingIds`` per 100 listings and one personalization read per listing."""
        wanted = set[int]().union(*(receipt.listing_ids for receipt in receipts)) - set(self.listings)
        if not wanted:
            return
        found = {}
        for data in self.client.get_listings_by_listing_ids(sorted(wanted)):
            try:
                info = parse_listing(data)
            except ParseError as exc:
                self.errors.append(str(exc))
                continue
            found[info.listing_id] = info
        for listing_id in sorted(wanted):
            info = found.get(listing_id) or ListingInfo(listing_id=listing_id, title="", main_image_url=None)
            try:
                questions = parse_questions(self.client.get_listing_personalization(listing_id))
            except EtsyNotFoundError:
                questions = ()  # a deleted listing: its receipts still sync, answers keep Etsy's names
            self.listings[listing_id] = replace(info, questions=questions)

    def recheck_pages(self, ws: Workspace, shop_id: int) -> list[Page]:
        """Receipts of open orders, read again whatever their update time says (refunds Etsy did not bump,
        open-api #513); they never move the high-water mark."""
        open_orders: dict[int, datetime | None] = {}
        for rid in {row.receipt_id for row in ws.jobs(active=True, limit=1_000_000)}:
            with contextlib.suppress(KaalwatchError):
                open_orders[rid] = ws.load(rid).ordered_at
        if not open_orders:
            return []
        dates = [d for d in open_orders.values() if d is not None]
        oldest = int(min(dates).timestamp()) - 1 if dates else MIN_TIMESTAMP
        filters = {"sort_on": "created", "sort_order": "asc", "min_created": max(MIN_TIMESTAMP, oldest)}
        return [([r for r in receipts if r.receipt_id in open_orders], 0)
                for receipts, _ in self.pages(shop_id, filters)]
