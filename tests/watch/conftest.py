"""Fixtures of the watcher tests: short timings, a one-item order folder, a running WatchService."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from tests.watch.helpers import ThreadPreviewPool

QUIET = 0.3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short quiet period and small previews so the tests stay fast; no timer rescan during a test."""
    return dataclasses.replace(
        settings,
        watcher=dataclasses.replace(settings.watcher, quiet_seconds=QUIET, poll_interval_seconds=0.2,
                                    rescan_minutes=60.0, workers=2),
        preview=dataclasses.replace(settings.preview, long_edge=256, thumb_edge=64),
    )


@pytest.fixture
def pool() -> Iterator[ThreadPreviewPool]:
    p = ThreadPreviewPool(2)
    yield p
    p.shutdown()


@pytest.fixture
def order_at(ws: Workspace, make_order: Callable[..., Order]) -> Callable[..., tuple[Order, Path]]:
    """Add an order to the workspace: returns (order, its folder)."""

    def factory(**kwargs: object) -> tuple[Order, Path]:
        order = make_order(**kwargs)
        folder = ws.add_order(order)
        return ws.load(order.receipt_id), folder

    return factory


@pytest.fixture
def start_service(ws: Workspace, settings: Settings, pool: ThreadPreviewPool) -> Iterator[Callable[..., WatchService]]:
    started: list[WatchService] = []

    def factory(settings_: Settings | None = None, **kwargs: object) -> WatchService:
        service = WatchService(ws, settings_ or settings, pool, **kwargs)  # type: ignore[arg-type]
        service.start()
        started.append(service)
        return service

    yield factory
    for service in started:
        service.stop(timeout=10)
