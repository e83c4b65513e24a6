"""Polling instead of sleeping: wait for a condition, failing with a clear message when it never comes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail naming ``what`` at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            about = what or getattr(predicate, "__name__", predicate)
            raise AssertionError(f"timed out after {timeout:g} s waiting for {about}")
        time.sleep(interval)
