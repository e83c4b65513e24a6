"""One sync pass: Etsy receipts → order folders, manifests, jobs and reference files (``kaalwatch sync``).

The pass, assembled in :func:`sync_once`:

1. **fetch** every page of ``getShopReceipts`` modified since the high-water mark minus a safety margin
   (or created since ``--since`` / ``sync.first_import_days`` on a first import), sorted by update time;
2. **look up** the listings of receipts that become new orders: one ``getListingsByListingIds`` call per
   100 listings and one ``getListingPersonalization`` per distinct listing — nothing per receipt;
3. **apply** page by page: new paid orders get their folder (``ws.add_order``), existing ones change only
   through ``ws.edit`` + :mod:`kaalwatch.lifecycle`; the high-water mark is saved after each page is
   fully applied, so a crash or a fault mid-sync loses nothing and the repeat changes nothing;
4. **queue** the new orders' buyer uploads and style samples for :mod:`kaalwatch.download_queue`, which
   fetches them outside the pass (a slow buyer server never holds up the next order);
5. now and then **re-check open orders** even if Etsy did not bump their ``update_timestamp`` (refunds,
   Etsy open-api #513).

Steps 1, 2 and 5 are :class:`kaalwatch.sync_fetch.Fetcher`; steps 3 and 4 :class:`kaalwatch.sync_apply.Applier`
(which references a new order asks for: :mod:`kaalwatch.download_plan`); the shop is
:func:`kaalwatch.etsy.shop.shop_id`'s.

An order whose receipt did not change is not rewritten, and no file of it changes: a second sync with no
change on Etsy leaves every order folder byte-for-byte identical and costs exactly one API call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kaalwatch import download_queue
from kaalwatch.errors import AuthError, EtsyError, KaalwatchError, WorkspaceError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.ratelimit import NOT_BEFORE_KEYS
from kaalwatch.etsy.shop import shop_id as find_shop_id
from kaalwatch.model import iso, parse_time, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync_apply import Applier, link_addons
from kaalwatch.sync_fetch import Fetcher, Page

log = logging.getLogger(__name__)

STATE = "sync"

Clock = Callable[[], datetime]
Progress = Callable[[int, int], None]


@dataclass
class SyncReport:
    """What one pass did; ``summary()`` is the one line shown after every run."""

    new: int = 0
    updated: int = 0
    cancelled: int = 0
    completed: int = 0
    queued_downloads: int = 0  # reference files left to the download queue
    errors: list[str] = field(default_factory=list)
    api_calls: int = 0
    skipped: int = 0  # receipts that were never open work here (finished before the first import, unpaid)
    dry_run: bool = False
    changes: list[str] = field(default_factory=list)  # dry run: what would change, one line each
    fatal: str | None = None  # the error that stopped the pass early (the rest was still applied)
    needs_reauth: bool = False
    exception: KaalwatchError | None = field(default=None, repr=False)

    def summary(self) -> str:
        head = "sync (dry run)" if self.dry_run else "sync"
        verb = "would be " if self.dry_run else ""
        text = (f"{head}: {self.new} new, {self.updated} {verb}updated, {self.cancelled} cancelled, "
                f"{self.completed} completed, {self.queued_downloads} files to download, {len(self.errors)} errors, "
                f"{self.api_calls} API calls")
        if self.fatal:
            text += f"; stopped early: {self.fatal}"
        return text

    def as_dict(self) -> dict[str, Any]:
        kept = {key: value for key, value in asdict(self).items() if key not in ("exception", "changes")}
        return {**kept, "errors": self.errors[:20]}


def sync_once(ws: Workspace, settings: Settings, client: EtsyClient, *, since: datetime | None = None,
              dry_run: bool = False, progress: Progress | None = None, now: Clock = utcnow) -> SyncReport:
    """One pass (see the module docstring); records the outcome in ``state/sync.json`` unless ``dry_run``.

    Etsy errors that stop the pass (revoked auth, the daily limit, Etsy unreachable) do not raise: what
    was fetched before is applied, and the report carries ``fatal``, ``needs_reauth`` and ``exception``.
    """
    report = SyncReport(dry_run=dry_run)
    state = ws.read_state(STATE)
    fetch = Fetcher(client, settings.sync, report.errors, now)
    applier = Applier(ws, settings, report, fetch.listings, dry_run=dry_run, now=now)
    started_calls = client.calls
    attempt_at = now()
    high_water = state.get("high_water") if isinstance(state.get("high_water"), int | float) else None
    try:
        ws.refresh_index()
        applier.known = set(ws.receipt_ids())
        shop = find_shop_id(client)
        first_import = since is not None or high_water is None
        pages = fetch.pages(shop, fetch.filters(high_water, since))
        if not first_import and _recheck_due(state, settings, now) and fetch.stopped is None:
            pages += fetch.recheck_pages(ws, shop)
        fetch.fetch_listings(r for receipts, _ in pages for r in receipts
                             if r.receipt_id not in applier.known and r.is_open_work)
        high_water = _apply_pages(ws, applier, pages, state, high_water, progress, lambda: fetch.total)
        link_addons(ws, settings, report, dry_run=dry_run)
        if not dry_run and (first_import or _recheck_due(state, settings, now)) and fetch.stopped is None:
            state["last_open_recheck"] = iso(now())
        if fetch.stopped is not None:
            raise fetch.stopped
    except KaalwatchError as exc:
        report.fatal = str(exc)
        report.exception = exc
        report.needs_reauth = isinstance(exc, AuthError)
        log.warning("sync stopped: %s", exc)
    finally:
        report.api_calls = client.calls - started_calls
    if not dry_run:
        _finish(ws, state, report, attempt_at, high_water)
    log.info("%s", report.summary())
    return report


def _apply_pages(ws: Workspace, applier: Applier, pages: list[Page], state: dict[str, Any],
                 high_water: float | None, progress: Progress | None, total: Callable[[], int]) -> float | None:
    """Steps 3 and 4, page by page; the high-water mark moves after each page is fully applied (a crash or a
    fault mid-sync loses nothing, and the repeat changes nothing). Returns the mark."""
    done = 0
    advance = True
    for receipts, top in pages:
        for receipt in receipts:
            try:
                applier.apply(receipt)
            except (EtsyError, WorkspaceError) as exc:
                # Transient: keep the high-water mark here so the next pass repeats this page.
                advance = False
                applier.record_order_error(receipt.receipt_id, exc)
            except KaalwatchError as exc:
                applier.record_order_error(receipt.receipt_id, exc)
            done += 1
            if progress is not None:
                progress(done, max(total(), done))
        if applier.dry_run:
            continue
        download_queue.enqueue(ws, applier.queued)  # with each page: a crash later in the pass loses no download
        applier.queued.clear()
        if advance and top:
            high_water = max(high_water or 0, top)
            _write_state(ws, {**state, "high_water": high_water})
            state["high_water"] = high_water
    return high_water


def _recheck_due(state: dict[str, Any], settings: Settings, now: Clock) -> bool:
    last = parse_time(state.get("last_open_recheck"))
    return last is None or now() - last >= timedelta(hours=settings.sync.recheck_open_hours)


def _finish(ws: Workspace, state: dict[str, Any], report: SyncReport, attempt_at: datetime,
            high_water: float | None) -> None:
    """Record the pass in ``state/sync.json``."""
    # Orders an older kaalwatch left with downloads to retry join the queue once.
    legacy = state.pop("pending_downloads", None)
    download_queue.enqueue(ws, [int(k) for k in (legacy or {}) if str(k).isdigit()])
    state = {**state, "last_attempt": iso(attempt_at), "last_error": report.fatal,
             "needs_reauth": report.needs_reauth, "last_report": {**report.as_dict(), "summary": report.summary()}}
    if high_water is not None:
        state["high_water"] = high_water
    if report.fatal is None:
        state["last_success"] = iso(attempt_at)
    _write_state(ws, state)


def _write_state(ws: Workspace, state: dict[str, Any]) -> None:
    """Save the pass's state; Etsy's "not before" is the client's to write (it may have done so during this
    pass, or another process may have), so the copy on disk wins for those keys."""
    disk = ws.read_state(STATE)
    ws.write_state(STATE, {**state, **{k: disk[k] for k in NOT_BEFORE_KEYS if k in disk}})
