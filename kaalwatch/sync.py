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

An order whose receipt did not change is not rewritten, and no file of it changes: a second sync with no
change on Etsy leaves every order folder byte-for-byte identical and costs exactly one API call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from kaalwatch import download_queue, lifecycle
from kaalwatch.download import unique_file_name
from kaalwatch.errors import (
    AuthError,
    EtsyError,
    EtsyNotFoundError,
    KaalwatchError,
    WorkspaceError,
)
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.parse import (
    CANCELLED_STATUSES,
    UPLOAD_KINDS,
    EtsyReceipt,
    ListingInfo,
    NewOrder,
    ParseError,
    build_order,
    parse_listing,
    parse_questions,
    parse_receipt,
    updated_epoch,
)
from kaalwatch.etsy.ratelimit import NOT_BEFORE_KEYS
from kaalwatch.manifest import dump_manifest
from kaalwatch.model import Order, Reference, iso, parse_time, utcnow
from kaalwatch.settings import Settings, SyncSettings
from kaalwatch.store import Workspace

log = logging.getLogger(__name__)

STATE = "sync"
MIN_TIMESTAMP = 946_684_800  # Etsy refuses timestamp filters before 2000-01-01
STYLE_SAMPLE = "style sample"

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
        data = asdict(self)
        data.pop("exception")
        data.pop("changes")
        data["errors"] = self.errors[:20]
        return data


# --------------------------------------------------------------------------------------------------
# Pure decisions


def apply_update(order: Order, receipt: EtsyReceipt) -> list[str]:
    """Bring an existing order in line with its receipt via :mod:`lifecycle`; returns what changed.

    Cancellation and completion happen once, when Etsy's status first says so: a job the artist reopened
    afterwards is not cancelled again by every later sync.
    """
    changes: list[str] = []
    before = order.etsy_status.strip().lower()
    if before != receipt.status_key:
        lifecycle.set_etsy_status(order, receipt.status, actor="sync")
        changes.append(f"status {receipt.status}")
    if receipt.is_cancelled and before not in CANCELLED_STATUSES:
        open_jobs = [j for j in order.jobs if j.state.value not in ("cancelled", "delivered")]
        lifecycle.cancel(order, f"Etsy: {receipt.status}", actor="sync")
        if open_jobs:
            changes.append("cancelled")
    if receipt.is_shipped:  # marked shipped on Etsy (by hand or by us): a refused shipment no longer matters
        lifecycle.set_error(order, None, None, actor="sync", source="shipment")
    if receipt.is_completed and not order.etsy_completed and not receipt.is_cancelled:
        lifecycle.etsy_completed(order, actor="sync")
        changes.append("completed")
    updated_at = datetime.fromtimestamp(receipt.updated, UTC) if receipt.updated else None
    if updated_at and order.etsy_updated_at != updated_at:
        order.etsy_updated_at = updated_at
    if receipt.total and (order.total, order.currency) != (receipt.total, receipt.currency):
        order.total, order.currency = receipt.total, receipt.currency  # refunds change it; the books follow
    if order.anonymised_at is None:  # retention removed buyer text: never bring it back
        for name in ("message_from_buyer", "gift_message"):
            if getattr(order, name) != getattr(receipt, name):
                setattr(order, name, getattr(receipt, name))
                changes.append(name.replace("_", " "))
    return changes


def _url_stem(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name.rsplit(".", 1)[0] if "." in name else name


def _fetchable(url: str, kind: str | None, settings: SyncSettings) -> bool:
    """Links from Etsy's upload fields are fetched; a link typed into free text only from an allowed host."""
    if kind in UPLOAD_KINDS:
        return True
    host = (urlsplit(url).hostname or "").lower()
    return bool(host) and host in {h.lower() for h in settings.download_hosts}


def plan_references(new: NewOrder, settings: SyncSettings) -> list[Reference]:
    """References to fetch for a new order, ``pending`` until the download queue has them; at most
    ``download_max_files``. Links not fetched stay in the answers, shown on the page."""
    refs: list[Reference] = []
    taken: dict[str | None, set[str]] = {}
    for job in new.order.jobs:
        names = taken.setdefault(job.job_id if len(new.order.jobs) > 1 else None, set())
        kinds = {answer.question: answer.kind for answer in job.answers}
        for upload in new.uploads.get(job.job_id, []):
            if not _fetchable(upload.url, kinds.get(upload.question), settings):
                continue
            name = unique_file_name(upload.label or _url_stem(upload.url) or "photo", "", names)
            names.add(name)
            refs.append(Reference(name=name, source="buyer", job_id=job.job_id, url=upload.url, label=upload.label,
                                  status="pending"))
        sample = new.style_samples.get(job.job_id)
        if sample:
            name = unique_file_name(STYLE_SAMPLE, "", names)
            names.add(name)
            refs.append(Reference(name=name, source="listing", job_id=job.job_id, url=sample, label=STYLE_SAMPLE,
                                  status="pending"))
    if len(refs) > settings.download_max_files:
        lifecycle.set_error(new.order, None, f"{lifecycle.DOWNLOAD_ERROR_PREFIX}only the first "
                            f"{settings.download_max_files} of {len(refs)} files are downloaded; the others are "
                            "listed with the answers", actor="sync", source="download")
    return refs[: settings.download_max_files]


# --------------------------------------------------------------------------------------------------
# The pass


class _Pass:
    """State of one run; the steps are methods so :func:`sync_once` reads as the list above."""

    def __init__(self, ws: Workspace, settings: Settings, client: EtsyClient, *, dry_run: bool,
                 progress: Progress | None, now: Clock) -> None:
        self.ws = ws
        self.settings = settings
        self.client = client
        self.dry_run = dry_run
        self.progress = progress
        self.now = now
        self.report = SyncReport(dry_run=dry_run)
        self.state = ws.read_state(STATE)
        self.listings: dict[int, ListingInfo] = {}
        self.known: set[int] = set()
        self.queued: list[int] = []  # new orders with references for the download queue
        self.stopped: EtsyError | None = None  # the Etsy error that ended fetching early
        self.total = 0  # receipts the first query matches (for the progress bar)

    # ----- step 1: fetch

    def shop_id(self) -> int:
        tokens = self.client.tokens()
        if tokens.shop_id:
            return int(tokens.shop_id)
        me = self.client.get_me()
        if not me.get("shop_id"):
            raise EtsyError("this Etsy account has no shop",
                            hint="connect the shop owner's account with `kaalwatch auth`")
        return int(me["shop_id"])

    def filters(self, since: datetime | None) -> dict[str, Any]:
        base: dict[str, Any] = {"sort_on": "updated", "sort_order": "asc"}
        high_water = self.state.get("high_water")
        if since is not None:
            return {**base, "min_created": max(MIN_TIMESTAMP, int(since.timestamp()))}
        if isinstance(high_water, int | float) and high_water > 0:
            margin = self.settings.sync.margin_minutes * 60
            return {**base, "min_last_modified": max(MIN_TIMESTAMP, int(high_water - margin))}
        start = self.now() - timedelta(days=self.settings.sync.first_import_days)
        return {**base, "min_created": max(MIN_TIMESTAMP, int(start.timestamp()))}

    def fetch_pages(self, shop_id: int, filters: dict[str, Any]) -> list[tuple[list[EtsyReceipt], int]]:
        """Every page, parsed; on an Etsy error the pages fetched so far are kept and the error re-raised
        after they are applied (see :func:`sync_once`)."""
        pages: list[tuple[list[EtsyReceipt], int]] = []
        try:
            for page in self.client.iter_receipt_pages(shop_id, **filters):
                parsed: list[EtsyReceipt] = []
                top = 0
                for raw in page.results:
                    top = max(top, updated_epoch(raw))  # any spelling: an unread one would reset the mark
                    try:
                        parsed.append(parse_receipt(raw))
                    except ParseError as exc:
                        self.report.errors.append(str(exc))
                        log.warning("skipped an unreadable receipt: %s", exc)
                pages.append((parsed, top))
                self.total = page.count
        except EtsyError as exc:
            self.stopped = exc
        return pages

    # ----- step 2: listings

    def fetch_listings(self, receipts: Iterable[EtsyReceipt]) -> None:
        wanted = set()
        for receipt in receipts:
            wanted |= receipt.listing_ids
        wanted -= set(self.listings)
        if not wanted:
            return
        found = {}
        for data in self.client.get_listings_by_listing_ids(sorted(wanted), includes=("Images",)):
            try:
                info = parse_listing(data, personalization={})
            except ParseError as exc:
                self.report.errors.append(str(exc))
                continue
            found[info.listing_id] = info
        for listing_id in sorted(wanted):
            info = found.get(listing_id)
            try:
                questions = parse_questions(self.client.get_listing_personalization(listing_id))
            except EtsyNotFoundError:
                questions = ()  # a deleted listing: its receipts still sync, answers keep Etsy's names
            if info is None:
                info = ListingInfo(listing_id=listing_id, title="", main_image_url=None)
            self.listings[listing_id] = ListingInfo(listing_id=info.listing_id, title=info.title,
                                                    main_image_url=info.main_image_url, questions=questions,
                                                    skus=info.skus)

    # ----- step 3: apply

    def apply(self, receipt: EtsyReceipt) -> None:
        rid = receipt.receipt_id
        if rid in self.known:
            self.update(receipt)
        elif receipt.is_open_work:
            self.create(receipt)
        else:
            self.report.skipped += 1

    def create(self, receipt: EtsyReceipt) -> None:
        new = build_order(receipt, self.listings, self.settings)
        order = new.order
        for job in order.jobs:
            if new.needs_references.get(job.job_id):
                lifecycle.await_references(order, job.job_id, actor="sync")
        for addon, rule in new.addons:  # Rush and the like: no job, they change the order
            lifecycle.add_addon(order, addon, rush_days=rule.rush_days, urgent=rule.urgent, actor="sync")
        order.references = plan_references(new, self.settings.sync)
        order.synced_at = self.now()
        self.report.new += 1
        if self.dry_run:
            self.report.changes.append(f"would create order {order.receipt_id} ({len(order.jobs)} jobs, "
                                       f"{len(order.references)} reference files)")
            return
        self.ws.add_order(order)
        self.known.add(order.receipt_id)
        log.info("order %s created (%d jobs)", order.receipt_id, len(order.jobs))
        if order.references:
            self.queued.append(order.receipt_id)
            self.report.queued_downloads += len(order.references)

    def update(self, receipt: EtsyReceipt) -> None:
        rid = receipt.receipt_id
        if self.dry_run:
            changes = apply_update(self.ws.load(rid), receipt)
            if changes:
                self._count(changes)
                self.report.changes.append(f"would update order {rid}: {', '.join(changes)}")
            return
        with self.ws.edit(rid) as order:
            # This order synced: an earlier failure to sync it is over.
            lifecycle.set_error(order, None, None, actor="sync", source="sync")
            before = dump_manifest(order)
            changes = apply_update(order, receipt)
            if dump_manifest(order) != before:
                order.synced_at = self.now()
        if changes:
            self._count(changes)
            log.info("order %s updated: %s", rid, ", ".join(c.split(" ")[0] for c in changes))

    def _count(self, changes: list[str]) -> None:
        self.report.updated += 1
        self.report.cancelled += "cancelled" in changes
        self.report.completed += "completed" in changes

    def record_order_error(self, rid: int, exc: KaalwatchError) -> None:
        message = f"order {rid}: {exc}"
        self.report.errors.append(message)
        log.warning("sync of order %s failed: %s", rid, exc)
        if self.dry_run or rid not in self.known:
            return
        with contextlib.suppress(KaalwatchError), self.ws.edit(rid) as order:
            lifecycle.set_error(order, None, f"Etsy sync of this order failed: {exc}", actor="sync", source="sync")

    # ----- step 5: open orders

    def recheck_due(self) -> bool:
        last = parse_time(self.state.get("last_open_recheck"))
        return last is None or self.now() - last >= timedelta(hours=self.settings.sync.recheck_open_hours)

    def open_orders(self) -> dict[int, datetime | None]:
        open_ids = {row.receipt_id for row in self.ws.jobs(active=True, limit=1_000_000)}
        out: dict[int, datetime | None] = {}
        for rid in open_ids:
            with contextlib.suppress(KaalwatchError):
                out[rid] = self.ws.load(rid).ordered_at
        return out


def sync_once(ws: Workspace, settings: Settings, client: EtsyClient, *, since: datetime | None = None,
              dry_run: bool = False, progress: Progress | None = None, now: Clock = utcnow) -> SyncReport:
    """One pass (see the module docstring); records the outcome in ``state/sync.json`` unless ``dry_run``.

    Etsy errors that stop the pass (revoked auth, the daily limit, Etsy unreachable) do not raise: what
    was fetched before is applied, and the report carries ``fatal``, ``needs_reauth`` and ``exception``.
    """
    run = _Pass(ws, settings, client, dry_run=dry_run, progress=progress, now=now)
    report = run.report
    started_calls = client.calls
    attempt_at = now()
    high_water = run.state.get("high_water") if isinstance(run.state.get("high_water"), int | float) else None
    try:
        ws.refresh_index()
        run.known = set(ws.receipt_ids())
        shop_id = run.shop_id()
        first_import = since is not None or high_water is None
        pages = run.fetch_pages(shop_id, run.filters(since))
        if not first_import and run.recheck_due() and run.stopped is None:
            pages += _recheck_pages(run, shop_id)
        new = [r for receipts, _ in pages for r in receipts if r.receipt_id not in run.known and r.is_open_work]
        run.fetch_listings(new)
        done = 0
        advance = True
        for receipts, top in pages:
            for receipt in receipts:
                try:
                    run.apply(receipt)
                except (EtsyError, WorkspaceError) as exc:
                    # Transient: keep the high-water mark here so the next pass repeats this page.
                    advance = False
                    run.record_order_error(receipt.receipt_id, exc)
                except KaalwatchError as exc:
                    run.record_order_error(receipt.receipt_id, exc)
                done += 1
                if progress is not None:
                    progress(done, max(run.total, done))
            if not dry_run:  # queued with each page, so a crash later in the pass loses no download
                download_queue.enqueue(ws, run.queued)
                run.queued.clear()
            if advance and top and not dry_run:
                high_water = max(high_water or 0, top)
                _write_state(ws, {**run.state, "high_water": high_water})
                run.state["high_water"] = high_water
        if not dry_run and (first_import or run.recheck_due()) and run.stopped is None:
            run.state["last_open_recheck"] = iso(now())
        if run.stopped is not None:
            raise run.stopped
    except KaalwatchError as exc:
        report.fatal = str(exc)
        report.exception = exc
        report.needs_reauth = isinstance(exc, AuthError)
        log.warning("sync stopped: %s", exc)
    finally:
        report.api_calls = client.calls - started_calls
    if not dry_run:
        # Orders an older kaalwatch left with downloads to retry join the queue once.
        legacy = run.state.pop("pending_downloads", None)
        download_queue.enqueue(ws, [int(k) for k in (legacy or {}) if str(k).isdigit()])
        state = dict(run.state)
        state.update({
            "last_attempt": iso(attempt_at),
            "last_error": report.fatal,
            "needs_reauth": report.needs_reauth,
            "last_report": {**report.as_dict(), "summary": report.summary()},
        })
        if high_water is not None:
            state["high_water"] = high_water
        if report.fatal is None:
            state["last_success"] = iso(attempt_at)
        _write_state(ws, state)
    log.info("%s", report.summary())
    return report


def _write_state(ws: Workspace, state: dict[str, Any]) -> None:
    """Save the pass's state; Etsy's "not before" is the client's to write (it may have done so during this
    pass, or another process may have), so the copy on disk wins for those keys."""
    disk = ws.read_state(STATE)
    ws.write_state(STATE, {**state, **{k: disk[k] for k in NOT_BEFORE_KEYS if k in disk}})


def _recheck_pages(run: _Pass, shop_id: int) -> list[tuple[list[EtsyReceipt], int]]:
    """Receipts of open orders, read again whatever their update time says; they never move the high-water mark."""
    open_orders = run.open_orders()
    if not open_orders:
        return []
    dates = [d for d in open_orders.values() if d is not None]
    oldest = int(min(dates).timestamp()) - 1 if dates else MIN_TIMESTAMP
    filters = {"sort_on": "created", "sort_order": "asc", "min_created": max(MIN_TIMESTAMP, oldest)}
    pages = run.fetch_pages(shop_id, filters)
    return [([r for r in receipts if r.receipt_id in open_orders], 0) for receipts, _ in pages]
