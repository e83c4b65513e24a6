"""A connected sandbox shop for tests: a running sandbox, settings pointing at it, a connected client."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest
import requests

from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection, connect
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

SCOPES = ("transactions_r", "transactions_w", "shops_r", "listings_r")


def sandbox_settings(settings: Settings, sb: Sandbox, **etsy: object) -> Settings:
    """``settings`` pointed at ``sb``: pure configuration, no code path differs from the real Etsy."""
    values = {"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret, "scopes": SCOPES,
              "redirect_port": 0, "rate_per_second": 1000.0, "max_retries": 4, "timeout_seconds": 5.0, **etsy}
    return dataclasses.replace(settings, etsy=dataclasses.replace(settings.etsy, **values))


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The seeded sandbox, consent auto-approved, clock frozen, limits out of the way."""
    sb = Sandbox(seed=1, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000)
    sb.start()
    yield sb
    sb.stop()


@pytest.fixture
def sb_settings(settings: Settings, sandbox: Sandbox) -> Settings:
    return sandbox_settings(settings, sandbox)


@pytest.fixture
def sb_ws(sb_settings: Settings) -> Iterator[Workspace]:
    ws = Workspace(sb_settings)
    ws.create()
    yield ws
    ws.close()


def browser_get(url: str) -> object:
    """The demo's "browser": a GET that follows the auto-approved consent redirect to our callback."""
    return requests.get(url, timeout=10)


@pytest.fixture
def connected(sb_settings: Settings, sb_ws: Workspace) -> Connection:
    return connect(sb_settings, sb_ws, browser_get, output=lambda line: None)


@pytest.fixture
def make_client(sb_settings: Settings, sb_ws: Workspace) -> Iterator[Callable[..., EtsyClient]]:
    made: list[EtsyClient] = []

    def factory(**kwargs: object) -> EtsyClient:
        client = EtsyClient.from_settings(kwargs.pop("settings", sb_settings), sb_ws, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()
