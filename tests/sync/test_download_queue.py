"""The download queue on its own: leases keep two runners off one order; an order's byte budget holds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kaalwatch.download_queue import DownloadQueue, enqueue, waiting
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.sandbox import Sandbox
from kaalwatch.sandbox.seed import PET_LISTING
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import sync_once


def test_a_taken_order_is_leased_to_one_runner_until_the_lease_ends(settings: Settings, ws: Workspace) -> None:
    now = [1000.0]
    daemon = DownloadQueue(ws, settings, clock=lambda: now[0])
    by_hand = DownloadQueue(ws, settings, clock=lambda: now[0])
    enqueue(ws, [42, 43], now=now[0])
    assert daemon.take_due() == [42, 43]
    assert by_hand.take_due() == []  # the daemon has them
    now[0] += daemon.lease + 1  # the daemon died mid-way: the lease ends and the orders are taken again
    assert by_hand.take_due() == [42, 43]
    assert waiting(ws) == 2


def test_an_orders_byte_budget_caps_what_it_downloads(
        sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace, connected: Connection,
        make_client: Callable[..., EtsyClient]) -> None:
    rid = sandbox.add_order(PET_LISTING, uploads=2)["receipt_id"]
    assert sync_once(sb_ws, sb_settings, make_client(sleep=lambda s: None)).fatal is None
    tight = dataclasses.replace(sb_settings, sync=dataclasses.replace(sb_settings.sync, download_order_max_mb=0.0005))
    DownloadQueue(sb_ws, tight).run()
    refs = sb_ws.load(rid).references
    assert refs and all(r.status == "failed" and "too big" in (r.error or "") for r in refs)
    assert not any((sb_ws.folder_of(rid) / "references").glob("*.jpg"))
