"""One sync pass: Etsy receipts → order folders, manifests, jobs and reference files (``kaalwatch sync``).

The pass, assembled in :func:`sync_once`:

1. **fetch** every page of ``getShopReceipts`` modified since the high-water mark minus a safety margin
   (or created since ``--since`` / ``sync.first_import_days`` on a first import), sorted by update time;
2. **look up** the listings of receipts that become new orders: one ``getListingsByListingIds`` call per
   100 listings and one ``getListingPersonalization`` per distinct listing — nothing per receipt;
3. **apply** page by page: new paid orders get their folder (``ws.add_order``), existing ones change only
   through ``ws.edit`` + :mod:`kaalwatch.lifecycle`; the high-water mark is saved after each page is
   fully applied, so a crash or a fault mid-sync loses nothing and the repeat changes nothing;
4. **download** buyer uploads and the listing's style sample through :mod:`kaalwatch.download`; failures
   are shown on the job and retried on later syncs, never fatal;
5. now and then **re-check open orders** even if Etsy did not bump their ``update_timestamp`` (refunds,
   Etsy open-api #513).

An order whose receipt did not change is not rewritten, and no file of it changes: a second sync with no
change on Etsy leaves every order folder byte-for-byte identical and costs exactly one API call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from kaalwatch import lifecycle
from kaalwatch.atomic import TEMP_MARK
from kaalwatch.download import Downloaded, DownloadPolicy, fetch, unique_file_name
from kaalwatch.errors import (
    AuthError,
    DownloadError,
    EtsyError,
    EtsyNotFoundError,
    KaalwatchError,
    ManifestError,
    WorkspaceError,
)
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.parse import (
    CANCELLED_STATUSES,
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
from kaalwatch.model import Order, Reference, iso, parse_time, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace, dump_manifest

log = logging.getLogger(__name__)

STATE = "sync"
MIN_TIMESTAMP = 946_684_800  # Etsy refuses timestamp filters before 2000-01-01
MAX_DOWNLOAD_ATTEMPTS = 10
DOWNLOAD_ERROR_PREFIX = "download: "
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
    failed_downloads: int = 0
    errors: list[str] = field(default_factory=list)
    api_calls: int = 0
    skipped: int = 0  # receipts that were never open work here (finished before the first import, unpaid)
    downloads: int = 0
    dry_run: bool = False
    changes: list[str] = field(default_factory=list)  # dry run: what would change, one line each
    fatal: str | None = None  # the error that stopped the pass early (the rest was still applied)
    needs_reauth: bool = False
    exception: KaalwatchError | None = field(default=None, repr=False)

    def summary(self) -> str:
        head = "sync (dry run)" if self.dry_run else "sync"
        verb = "would be " if self.dry_run else ""
        text = (f"{head}: {self.new} new, {self.updated} {verb}updated, {self.cancelled} cancelled, "
                f"{self.completed} completed, {self.failed_downloads} failed downloads, {len(self.errors)} errors, "
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


def plan_references(new: NewOrder) -> list[Reference]:
    """References to fetch for a new order, status ``pending`` until downloaded."""
    refs: list[Reference] = []
    taken: dict[str | None, set[str]] = {}
    for job in new.order.jobs:
        names = taken.setdefault(job.job_id if len(new.order.jobs) > 1 else None, set())
        for upload in new.uploads.get(job.job_id, []):
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
    return refs


# --------------------------------------------------------------------------------------------------
# The pass


class _Pass:
    """State of one run; the steps are methods so :func:`sync_once` reads as the list above."""

    def __init__(self, ws: Workspace, settings: Settings, client: EtsyClient, *, dry_run: bool,
                 progress: Progress | None, now: Clock, fetch_references: bool) -> None:
        self.ws = ws
        self.settings = settings
        self.client = client
        self.dry_run = dry_run
        self.progress = progress
        self.now = now
        self.fetch_references = fetch_references
        self.report = SyncReport(dry_run=dry_run)
        self.state = ws.read_state(STATE)
        self.policy = DownloadPolicy.from_settings(settings)
        self.listings: dict[int, ListingInfo] = {}
        self.pending: dict[str, int] = dict(self.state.get("pending_downloads") or {})
        self.sample_cache: dict[str, Downloaded] = {}
        self.download_session = requests.Session()
        self.known: set[int] = set()
        self.attempted: set[int] = set()  # orders whose downloads ran in this pass (not retried twice)
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
        order.references = plan_references(new)
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
            self.pending[str(order.receipt_id)] = 0
            if self.fetch_references:
                self.download(order.receipt_id)

    def update(self, receipt: EtsyReceipt) -> None:
        rid = receipt.receipt_id
        if self.dry_run:
            changes = apply_update(self.ws.load(rid), receipt)
            if changes:
                self._count(changes)
                self.report.changes.append(f"would update order {rid}: {', '.join(changes)}")
            return
        with self.ws.edit(rid) as order:
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
            lifecycle.set_error(order, None, f"sync: {exc}", actor="sync")

    # ----- step 4: downloads

    def download(self, rid: int) -> None:
        """Fetch every pending or failed reference of one order, then record the outcome in one edit."""
        self.attempted.add(rid)
        order = self.ws.load(rid)
        folder = self.ws.folder_of(rid)
        outcomes: dict[int, Reference] = {}
        for index, ref in enumerate(order.references):
            if ref.status == "ok" or not ref.url or ref.source not in ("buyer", "listing"):
                continue
            target = self.ws.job_dir(folder, order, ref.job_id) / REFERENCES if ref.job_id else folder / REFERENCES
            taken = {r.name for r in order.references if r is not ref}
            outcomes[index] = self._fetch_one(ref, target, taken, rid)
        if not outcomes:
            self.pending.pop(str(rid), None)
            return
        with self.ws.edit(rid) as current:
            for index, result in outcomes.items():
                if index < len(current.references) and current.references[index].url == result.url:
                    current.references[index] = result
            failed_jobs: dict[str | None, list[Reference]] = {}
            for ref in current.references:
                if ref.status != "ok" and ref.source in ("buyer", "listing") and ref.url:
                    failed_jobs.setdefault(ref.job_id, []).append(ref)
            for job in current.jobs:
                buyer_ok = any(r.status == "ok" and r.source == "buyer" and r.job_id == job.job_id
                               for r in current.references)
                if buyer_ok:
                    lifecycle.references_arrived(current, job.job_id, actor="sync")
                failures = failed_jobs.get(job.job_id, [])
                if failures:
                    message = (f"{DOWNLOAD_ERROR_PREFIX}{len(failures)} reference file"
                               f"{'s' if len(failures) != 1 else ''} could not be fetched "
                               f"({failures[0].error}); retried on the next sync")
                    lifecycle.set_error(current, job.job_id, message, actor="sync")
                elif (job.last_error or "").startswith(DOWNLOAD_ERROR_PREFIX):
                    lifecycle.set_error(current, job.job_id, None, actor="sync")
            still = sum(len(v) for v in failed_jobs.values())
        self.report.failed_downloads += sum(1 for r in outcomes.values() if r.status == "failed")
        self.report.downloads += sum(1 for r in outcomes.values() if r.status == "ok")
        if still:
            self.pending[str(rid)] = self.pending.get(str(rid), 0) + 1
        else:
            self.pending.pop(str(rid), None)

    def _fetch_one(self, ref: Reference, target: Path, taken: set[str], rid: int) -> Reference:
        stem = ref.name  # planned names carry no suffix: the file's real format decides it
        try:
            cached = self.sample_cache.get(ref.url or "") if ref.source == "listing" else None
            if cached is not None and cached.path.is_file():
                got = _copy_into(cached, target, stem, taken)
            else:
                got = fetch(ref.url or "", target, stem, taken, policy=self.policy, session=self.download_session)
                if ref.source == "listing":
                    self.sample_cache[ref.url or ""] = got
        except DownloadError as exc:
            log.info("order %s: a reference download failed: %s", rid, exc)
            return Reference(name=ref.name, source=ref.source, job_id=ref.job_id, url=ref.url, label=ref.label,
                             status="failed", error=str(exc))
        except OSError as exc:
            return Reference(name=ref.name, source=ref.source, job_id=ref.job_id, url=ref.url, label=ref.label,
                             status="failed", error=f"could not save the file ({exc.strerror or exc})")
        return Reference(name=got.path.name, source=ref.source, job_id=ref.job_id, url=ref.url, label=ref.label,
                         sha256=got.sha256, size=got.size, status="ok", thumb=self._thumbnail(rid, got))

    def _thumbnail(self, rid: int, got: Downloaded) -> str | None:
        out = self.ws.previews_dir / str(rid) / "refs" / f"{got.sha256[:16]}.jpg"
        try:
            if not out.is_file():
                from kaalwatch.imaging import render_reference_thumbnail

                render_reference_thumbnail(got.path, out, edge=400,
                                           max_pixels=int(self.settings.preview.max_megapixels * 1_000_000))
            return self.ws.relative_to_tool(out)
        except (KaalwatchError, OSError, ImportError) as exc:
            log.info("order %s: no thumbnail for a reference (%s)", rid, exc)
            return None

    def retry_downloads(self) -> None:
        for key in sorted(self.pending, key=int):
            rid = int(key)
            if rid in self.attempted:
                continue
            if self.pending.get(key, 0) >= MAX_DOWNLOAD_ATTEMPTS or rid not in self.known:
                self.pending.pop(key, None)
                continue
            try:
                self.download(rid)
            except (ManifestError, WorkspaceError) as exc:
                self.record_order_error(rid, exc)

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


def _copy_into(source: Downloaded, target: Path, stem: str, taken: set[str]) -> Downloaded:
    """The same listing image for another order: copied, not downloaded again."""
    target.mkdir(parents=True, exist_ok=True)
    name = unique_file_name(stem, source.path.suffix, taken | set(os.listdir(target)))
    tmp = target / f".copy{TEMP_MARK}{os.getpid()}"
    shutil.copyfile(source.path, tmp)
    os.replace(tmp, target / name)
    return Downloaded(path=target / name, sha256=source.sha256, size=source.size, kind=source.kind)


def sync_once(ws: Workspace, settings: Settings, client: EtsyClient, *, since: datetime | None = None,
              dry_run: bool = False, progress: Progress | None = None, now: Clock = utcnow,
              fetch_references: bool = True) -> SyncReport:
    """One pass (see the module docstring); records the outcome in ``state/sync.json`` unless ``dry_run``.

    Etsy errors that stop the pass (revoked auth, the daily limit, Etsy unreachable) do not raise: what
    was fetched before is applied, and the report carries ``fatal``, ``needs_reauth`` and ``exception``.
    """
    run = _Pass(ws, settings, client, dry_run=dry_run, progress=progress, now=now,
                fetch_references=fetch_references)
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
            if advance and top and not dry_run:
                high_water = max(high_water or 0, top)
                ws.write_state(STATE, {**run.state, "high_water": high_water})
                run.state["high_water"] = high_water
        if not dry_run:
            if (first_import or run.recheck_due()) and run.stopped is None:
                run.state["last_open_recheck"] = iso(now())
            if fetch_references:
                run.retry_downloads()
        if run.stopped is not None:
            raise run.stopped
    except KaalwatchError as exc:
        report.fatal = str(exc)
        report.exception = exc
        report.needs_reauth = isinstance(exc, AuthError)
        log.warning("sync stopped: %s", exc)
    finally:
        run.download_session.close()
        report.api_calls = client.calls - started_calls
    if not dry_run:
        state = dict(run.state)
        state.update({
            "last_attempt": iso(attempt_at),
            "last_error": report.fatal,
            "needs_reauth": report.needs_reauth,
            "last_report": {**report.as_dict(), "summary": report.summary()},
            "pending_downloads": run.pending,
        })
        if high_water is not None:
            state["high_water"] = high_water
        if report.fatal is None:
            state["last_success"] = iso(attempt_at)
        ws.write_state(STATE, state)
    log.info("%s", report.summary())
    return report


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
