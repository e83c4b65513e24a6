"""The system Chromium that every browser test drives through Playwright (no browser download), and where
their screenshots go."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _is_tile(url: str) -> bool:
    # review_app/views/tiles.py: /jobs/<receipt>/<job>/v/<number>/tile/<level>/<x>/<y>
    return re.search(r"/v/\d+/tile/\d+/\d+/\d+$", url) is not None


def is_tile_retry(message: ConsoleMessage) -> bool:
    """A tile answered 503 while its level is being built: the viewer asks again by design, not an error."""
    return "status of 503" in message.text and _is_tile(message.location.get("url") or "")


def record_console_errors(page: Page, problems: list[str], *, failed_responses: bool = False) -> None:
    """Collect the page's script errors and console errors (except tile retries) into ``problems``; with
    ``failed_responses``, every answer of 400 or more too (again except a tile's 503)."""
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and not is_tile_retry(m) else None)
    if failed_responses:
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
                if r.status >= 400 and not (r.status == 503 and _is_tile(r.url)) else None)
