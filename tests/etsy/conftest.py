"""Fixtures for the Etsy client tests: the shared connected sandbox shop."""

from tests.support.etsy_shop import (  # noqa: F401 - fixtures are found by name
    browser_get,
    connected,
    make_client,
    sandbox,
    sandbox_settings,
    sb_settings,
    sb_ws,
)
