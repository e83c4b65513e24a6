"""The daemon's sync job: one sync pass per run, then the optional shipments.

It waits without counting a failure while Etsy's recorded "not before" has not passed; pauses while Etsy
refuses the connection, until ``kaalwatch auth`` changes the secrets folder; and backs off while Etsy or
the network keeps failing. Its Etsy client (one session, kept between runs) is dropped after any failure.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from kaalwatch import delivery, sync
from kaalwatch.errors import AuthError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.ratelimit import SYNC_STATE, describe_not_before
from kaalwatch.health import Backoff, Health, guard, one_line
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

log = logging.getLogger(__name__)


class SyncJob:
    """``run()`` is the scheduled job; ``on_new_downloads()`` is called when a pass queued reference files."""

    def __init__(self, ws: Workspace, settings: Settings, health: Health,
                 on_new_downloads: Callable[[], None]) -> None:
        self.ws = ws
        self.settings = settings
        self.health = health
        self.on_new_downloads = on_new_downloads
        self.backoff = Backoff.for_interval(settings.sync.interval_minutes * 60)
        self._client: EtsyClient | None = None
        self._auth_blocked_on: tuple[tuple[str, int], ...] | None = None

    def run(self) -> None:
        if self._auth_blocked_on is not None:
            if self.ws.secrets.signature() == self._auth_blocked_on:
                return  # paused until the shop is connected again
            self._auth_blocked_on = None
            self.health.sync_paused = None
            self.close()
        if self._etsy_says_wait() or not self.backoff.should_run():
            return
        try:
            if self._client is None:
                self._client = EtsyClient.from_settings(self.settings, self.ws)
            client = self._client
            report = sync.sync_once(self.ws, self.settings, client)
        except AuthError as exc:
            self._paused(one_line(exc))
            return
        except Exception as exc:
            self._failed(one_line(exc))
            return
        # sync_once applies what it could and reports an early stop instead of raising.
        if report.needs_reauth:
            self._paused(report.fatal or "not connected")
            return
        if report.fatal:
            self._failed(report.summary())
            return
        self.backoff.succeeded()
        if report.queued_downloads:  # new references: fetch them now
            self.on_new_downloads()
        self.health.sync_done(report.summary())
        self.health.recovered("sync")
        guard(self.health, "shipping", lambda: self._ship(client))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _etsy_says_wait(self) -> bool:
        """Etsy's recorded "not before" (by any process): no request until it passes, and not a failure."""
        line = describe_not_before(self.ws.read_state(SYNC_STATE))
        if line is not None:
            self.health.sync_done(f"waiting: {line}")
        return line is not None

    def _paused(self, reason: str) -> None:
        self._auth_blocked_on = self.ws.secrets.signature()
        self.close()
        message = f"Etsy refused the connection ({reason}); syncing paused until you run `kaalwatch auth`"
        self.health.sync_paused = message
        self.health.sync_done(f"paused: {message}")
        self.health.error("sync", message)

    def _failed(self, line: str) -> None:
        skipped = self.backoff.failed()
        self.close()  # a fresh session next time; a broken keep-alive must not stick
        self.health.sync_done(f"failed: {line}")
        self.health.error("sync", f"{line} (next attempt in {skipped + 1} run(s))")

    def _ship(self, client: EtsyClient) -> None:
        for line in delivery.ship_confirmed_orders(self.ws, self.settings, client):
            log.info("shipping: %s", line)
