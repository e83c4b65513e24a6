"""Tell the owner when something happens, through apprise (ntfy, e-mail, Telegram, desktop, …).

What is told, each kind switchable in ``notify.*``: a new order, the buyer's photos arrived, an order
cancelled or refunded on Etsy, a delivery confirmed by Etsy, a job due to ship tomorrow with no approved
version, sync failing for an hour or needing ``kaalwatch auth``. With no ``notify.urls`` (the default)
nothing is built and nothing leaves the machine.

How:
- Events come from what is already recorded: the orders' history (read only for manifests whose file
  changed since the last look), the index (ship-by dates) and the sync and health state files. Nothing
  elsewhere has to remember to notify, and a notice can be derived again after a crash.
- Each notice has stable keys (event, receipt, job, time). Keys are persisted in ``state/notify.json`` once a
  notice was attempted, so a restart never repeats one. The first run only records its start: the history
  from before notifications were turned on is not replayed.
- The text carries no buyer data beyond the first name and the receipt id: it goes to third parties.
- Sending happens on one background thread with a timeout per service. A service that fails is logged
  once (not per notice; the URL is never logged, it holds tokens) and then only its recovery is; sync and
  the watcher never wait for it. It is tried again after 1, 5 and 15 minutes and then hourly, about three
  hours in all (``RETRY_AFTER``), without telling the services that took the notice twice; those retries
  are kept in memory only, so a restart meanwhile drops them rather than repeat the notice to the others.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from kaalwatch.errors import ManifestError
from kaalwatch.model import ACTIVE_STATES, JobState, Order, iso, parse_time, utcnow
from kaalwatch.overview import to_datetime
from kaalwatch.settings import NotifySettings
from kaalwatch.store import MANIFEST, Workspace

log = logging.getLogger("kaalwatch.notify")

STATE = "notify"
#: Events older than this are not told about (a daemon that was off for a month does not replay it).
LOOKBACK = timedelta(days=7)
#: Sent keys are forgotten after this long: their events are past the look-back by then.
KEEP_KEYS = timedelta(days=14)
SYNC_FAILING = timedelta(hours=1)
#: An order imported this long after it was placed is history (a first import), not news.
NEW_ORDER_AGE = timedelta(days=2)
#: More notices of one kind than this in one scan become one summary (a first sync, a burst of refunds).
SUMMARY_OVER = 3
KINDS = ("new_order", "photos", "cancelled", "delivered", "ship_by", "sync_problem")


@dataclass(frozen=True)
class Notice:
    kind: str
    keys: tuple[str, ...]
    title: str
    body: str


def first_name(name: str | None, pseudonym: str | None = None) -> str:
    """The buyer's first name, printable characters only, or "a buyer" (anonymised or unknown)."""
    name = (name or "").strip()
    if not name or name == pseudonym:
        return "a buyer"
    first = "".join(ch for ch in name.split()[0] if ch.isprintable())[:40]
    return first or "a buyer"


def _key(event: str, receipt_id: int, job_id: str | None, at: datetime) -> str:
    return f"{event}:{receipt_id}:{job_id or '-'}:{iso(at)}"


def order_notices(order: Order, since: datetime) -> list[Notice]:
    """What this order's history since ``since`` is worth telling, one notice per kind."""
    rid = order.receipt_id
    who = first_name(order.buyer_name, order.pseudonym)
    found: dict[str, list[str]] = {}
    for event in order.history:
        if event.at < since:
            continue
        kind = {"order_created": "new_order", "cancelled": "cancelled"}.get(event.event)
        if kind == "new_order" and order.ordered_at is not None and event.at - order.ordered_at > NEW_ORDER_AGE:
            kind = None
        if event.event == "reference_added" and event.details.get("source") == "buyer":
            kind = "photos"
        if event.event == "delivered" and event.details.get("confirmed_by") == "etsy":
            kind = "delivered"
        if kind:
            found.setdefault(kind, []).append(_key(event.event, rid, event.job_id, event.at))
    items = len(order.jobs)
    texts = {
        "new_order": (f"New order #{rid}", f"{who} ordered {items} item{'s' if items != 1 else ''}: "
                      + "; ".join(job.title[:60] for job in order.jobs[:3])),
        "photos": (f"Photos arrived for #{rid}", f"{who}'s reference photos are in the order folder."),
        "cancelled": (f"Order #{rid} cancelled on Etsy", f"Etsy shows {who}'s order cancelled or refunded: "
                      "stop work on it."),
        "delivered": (f"Delivered: #{rid}", f"Etsy confirmed the delivery of {who}'s order."),
    }
    return [Notice(kind, tuple(keys), *texts[kind]) for kind, keys in found.items()]


def ship_by_notices(ws: Workspace, now: datetime) -> list[Notice]:
    """Jobs due to ship tomorrow (UTC dates, like the rest of the tool) that have no approved version."""
    tomorrow = (now + timedelta(days=1)).date()
    waiting = ACTIVE_STATES - {JobState.APPROVED, JobState.READY_TO_DELIVER, JobState.ON_HOLD}
    notices = []
    for row in ws.jobs(states=set(waiting), limit=100_000):
        if row.ship_by is None or row.ship_by.date() != tomorrow:
            continue
        notices.append(Notice(
            "ship_by", (f"ship_by:{row.receipt_id}:{row.job_id}:{tomorrow.isoformat()}",),
            f"#{row.receipt_id} ships tomorrow", f"{first_name(row.buyer)}'s {row.title[:60]} is due to ship "
            f"tomorrow and has no approved version yet ({row.state.label})."))
    return notices


def sync_notices(sync: dict[str, object], health: dict[str, object], now: datetime) -> list[Notice]:
    notices = []
    last_success = sync.get("last_success")
    streak = str(last_success or "never")
    if isinstance(health.get("sync_paused"), str) and health.get("running", True):
        notices.append(Notice("sync_problem", (f"reauth:{streak}",), "Etsy needs `kaalwatch auth`",
                              "Etsy refused the connection; syncing is paused until you run `kaalwatch auth`."))
    success = to_datetime(last_success)
    if sync.get("last_error") and success is not None and now - success >= SYNC_FAILING:
        hours = int((now - success).total_seconds() // 3600)
        notices.append(Notice("sync_problem", (f"sync_failing:{streak}",), "Etsy sync is failing",
                              f"No successful sync for {hours} h; `kaalwatch status` shows the last error."))
    return notices


def summarise(notices: list[Notice]) -> list[Notice]:
    """One notice per kind when a kind has more than ``SUMMARY_OVER`` (it still carries every key)."""
    by_kind: dict[str, list[Notice]] = {}
    for notice in notices:
        by_kind.setdefault(notice.kind, []).append(notice)
    out: list[Notice] = []
    for kind, group in by_kind.items():
        if len(group) <= SUMMARY_OVER:
            out += group
            continue
        receipts = sorted({key.split(":")[1] for notice in group for key in notice.keys})
        listed = ", ".join(f"#{r}" for r in receipts[:10]) + (" …" if len(receipts) > 10 else "")
        titles = {"new_order": "new orders", "photos": "orders with new photos", "cancelled": "orders cancelled",
                  "delivered": "deliveries confirmed", "ship_by": "jobs ship tomorrow unapproved"}
        out.append(Notice(kind, tuple(k for notice in group for k in notice.keys),
                          f"{len(receipts)} {titles.get(kind, kind)}", f"Receipts {listed}."))
    return out


# --------------------------------------------------------------------------------------------------
# Sending


def _with_timeout(url: str, seconds: float) -> str:
    # apprise's HTTP-based services read cto/rto (connect/read timeout); the others ignore them.
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}cto={seconds:g}&rto={seconds:g}"


#: Seconds before each new try of the services that did not take a notice; after the last, it is given up.
#: About three hours in all: a phone's push service or a mail server back within that still tells the owner.
RETRY_AFTER: tuple[float, ...] = (60, 300, 900, 3600, 3600, 3600)


@dataclass
class _Attempt:
    notice: Notice
    services: tuple[int, ...]  # positions in ``Sender._services`` still to be told
    tries: int = 0


class Sender:
    """One background thread that sends notices through apprise and reports each notice's first attempt.

    Each service is told separately, so a service that is down is tried again (``RETRY_AFTER``) without
    telling the others twice. The first attempt is what the scan records (so a restart repeats no notice to
    a service that took it); the retries live in this thread only and end with the process.
    """

    def __init__(self, settings: NotifySettings, on_attempt: Callable[[Notice, bool], None],
                 retry_after: tuple[float, ...] = RETRY_AFTER) -> None:
        import apprise

        # apprise logs failures with the service URL (tokens included) at WARNING; we log our own one line.
        logging.getLogger("apprise").setLevel(logging.CRITICAL)
        self._services: list[apprise.Apprise] = []
        for position, url in enumerate(settings.urls, 1):
            service = apprise.Apprise()
            if service.add(_with_timeout(url, settings.timeout_seconds)):
                self._services.append(service)
            else:
                scheme = url.split("://", 1)[0][:20] if "://" in url else "?"
                log.warning("notify.urls entry %d (%s://…) is not a URL apprise understands; it is skipped",
                            position, scheme)
        self._on_attempt = on_attempt
        self._retry_after = retry_after
        self._queue: queue.Queue[_Attempt | None] = queue.Queue()
        self._later: list[tuple[float, int, _Attempt]] = []  # a heap by due time (monotonic)
        self._order = itertools.count()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="kaalwatch-notify", daemon=True)
        self._thread.start()

    def send(self, notice: Notice) -> None:
        self._queue.put(_Attempt(notice, tuple(range(len(self._services)))))

    def deliver(self, notice: Notice) -> bool:
        """Send one notice now to every service (on the caller's thread); False when one did not take it."""
        return not self._tell(notice, tuple(range(len(self._services)))) and bool(self._services)

    def _tell(self, notice: Notice, services: tuple[int, ...]) -> tuple[int, ...]:
        """Send ``notice`` to ``services``; returns those that did not take it."""
        failed: list[int] = []
        for position in services:
            try:
                ok = bool(self._services[position].notify(title=notice.title, body=notice.body))
            except Exception as exc:  # a plugin bug must not end the thread
                log.debug("notify: %s", type(exc).__name__)
                ok = False
            if not ok:
                failed.append(position)
        if failed and not self._failing:
            log.warning("a notification could not be delivered (service unreachable or refused it); "
                        "kaalwatch tries again later and logs again only when notifications work again")
        elif not failed and self._failing:
            log.info("notifications are delivered again")
        self._failing = bool(failed)
        return tuple(failed)

    def _next(self) -> _Attempt | None:
        """The next attempt: a new notice, or a retry once it is due. None means stop."""
        while True:
            timeout = None
            if self._later:
                timeout = max(0.0, self._later[0][0] - time.monotonic())
                if timeout == 0.0:
                    return heapq.heappop(self._later)[2]
            try:
                return self._queue.get(timeout=timeout)
            except queue.Empty:
                continue

    def _run(self) -> None:
        while (attempt := self._next()) is not None:
            failed = self._tell(attempt.notice, attempt.services)
            attempt.tries += 1
            if failed and attempt.tries <= len(self._retry_after):
                due = time.monotonic() + self._retry_after[attempt.tries - 1]
                heapq.heappush(self._later, (due, next(self._order), _Attempt(attempt.notice, failed, attempt.tries)))
            elif failed:
                log.warning("notify: a %s notification was given up after %d tries", attempt.notice.kind,
                            attempt.tries)
            if attempt.tries > 1:
                continue
            try:
                self._on_attempt(attempt.notice, not failed)
            except Exception as exc:  # the state file could not be written: the next scan retries
                log.warning("notify: %s", exc)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sending; retries still waiting are dropped."""
        self._queue.put(None)
        self._thread.join(timeout)


# --------------------------------------------------------------------------------------------------
# The scan


class Notifier:
    """``scan()`` finds what is new and hands it to the sender; the daemon calls it every few seconds."""

    def __init__(self, ws: Workspace, settings: NotifySettings,
                 sender_factory: Callable[[NotifySettings, Callable[[Notice, bool], None]], Sender] = Sender) -> None:
        self.ws = ws
        self.settings = settings
        self._lock = threading.Lock()
        self._stamps: dict[Path, tuple[int, int, int]] = {}
        self._pending: set[str] = set()
        state = ws.read_state(STATE)
        self._sent: dict[str, str] = dict(state.get("sent") or {})
        since = to_datetime(state.get("since"))
        if since is None:
            # First run: what happened before notifications were on is not told. Whole seconds, as history stores.
            since = utcnow().replace(microsecond=0)
            ws.write_state(STATE, {"since": iso(since), "sent": self._sent})
        self.since = since
        self.sender = sender_factory(settings, self._attempted)

    def enabled(self, kind: str) -> bool:
        return bool(getattr(self.settings, kind))

    def _changed_orders(self) -> Iterable[Order]:
        seen: set[Path] = set()
        for folder in self.ws.iter_order_folders():
            seen.add(folder)
            try:
                st = os.stat(folder / MANIFEST)
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if self._stamps.get(folder) == stamp:
                continue
            try:
                order = self.ws.read_folder(folder)
            except (ManifestError, OSError):
                continue  # the page and `status` report broken manifests; a notice would only repeat it
            self._stamps[folder] = stamp
            yield order
        for gone in set(self._stamps) - seen:
            del self._stamps[gone]

    def scan(self, now: datetime | None = None) -> list[Notice]:
        """Queue every notice not told yet; returns them (for tests and the log)."""
        now = now or utcnow()
        since = max(self.since, now - LOOKBACK)
        found: list[Notice] = []
        for order in self._changed_orders():
            found += order_notices(order, since)
        found += ship_by_notices(self.ws, now)
        found += sync_notices(self.ws.read_state("sync"), self.ws.read_state("health"), now)
        queued: list[Notice] = []
        with self._lock:
            for notice in found:
                if not self.enabled(notice.kind):
                    continue
                if all(key in self._sent or key in self._pending for key in notice.keys):
                    continue
                self._pending.update(notice.keys)
                queued.append(notice)
        queued = summarise(queued)
        for notice in queued:
            log.info("notify: %s (%s)", notice.kind, notice.keys[0].split(":")[1])
            self.sender.send(notice)
        return queued

    def _attempted(self, notice: Notice, ok: bool) -> None:
        now = utcnow()
        sent_at = now.isoformat(timespec="seconds")  # utcnow() is UTC already: what iso() writes
        with self._lock:
            for key in notice.keys:
                self._sent[key] = sent_at
                self._pending.discard(key)
            cutoff = now - KEEP_KEYS
            self._sent = {k: at for k, at in self._sent.items() if (parse_time(at) or now) >= cutoff}
            state = {"since": iso(self.since), "sent": dict(self._sent)}
        self.ws.write_state(STATE, state)

    def stop(self, timeout: float = 2.0) -> None:
        self.sender.stop(timeout)


def send_test(settings: NotifySettings) -> bool:
    """``kaalwatch notify --test``: one notice, sent now; True when every service took it."""
    sender = Sender(settings, lambda notice, ok: None)
    try:
        return sender.deliver(Notice("test", ("test",), "kaalwatch test notification",
                                     "Notifications from kaalwatch reach you here."))
    finally:
        sender.stop()
