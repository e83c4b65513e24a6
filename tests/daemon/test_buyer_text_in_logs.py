"""Issue 17: no buyer text in the logs, even in errors. A real daemon runs against a sandbox full of hostile
buyer names, messages and answers; errors that carry order-folder paths are provoked (a broken manifest, a
corrupt save, refused buyer links); then every line of the log file and of the process's output is
searched for every buyer string, raw and in the spellings a folder name or a manifest gives it."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kaalwatch import naming
from kaalwatch.sandbox.seed import HOSTILE_NAMES, PET_LISTING
from kaalwatch.store import MANIFEST, Workspace
from tests.daemon.conftest import Connected, DaemonProcess
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

EXTRA_BUYERS = ["Quentin Zebulon-Vasquez", "Ärzte & Söhne <b>", "Yolanda {receipt_id} Okafor"]
MESSAGE = "Secret note from Marguerite: my address is 12 Rue Daguerre"
ANSWER = "Our dog is called Wolfgang Amadeus"


def _strings(receipts: list[dict[str, Any]]) -> set[str]:
    """Every buyer-written string of these receipts, in each spelling it can take on its way to a log."""
    out: set[str] = set()
    for r in receipts:
        texts = [r.get("name"), r.get("message_from_buyer"), r.get("gift_message")]
        texts += [v.get("formatted_value") for t in r.get("transactions", []) for v in t.get("variations", [])
                  if v.get("property_id") == 54]
        for text in texts:
            if not isinstance(text, str) or "http" in text:
                continue  # upload URLs are Etsy's, not buyer text
            plain = html.unescape(text)
            for form in {text, plain, naming.clean_text(plain, 200), naming.safe_component(plain, fallback="")}:
                for part in form.replace("\r", "\n").split("\n"):
                    if len(part.strip()) >= 6:
                        out.add(part.strip())
    return out


def _folders(ws: Workspace) -> Iterator[Path]:
    yield from (p for p in ws.orders_dir.iterdir() if p.is_dir())


def test_the_logs_of_a_full_run_with_hostile_buyers_hold_no_buyer_text(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess]) -> None:
    sb, ws = connected.sandbox, connected.ws
    for name in [*HOSTILE_NAMES, *EXTRA_BUYERS]:
        sb.add_order(PET_LISTING, buyer_name=name, uploads=1, message=MESSAGE, answers={7002: ANSWER})
    sb.add_hostile_order()
    daemon = daemon_factory(connected.config, ws.root, "hostile").start()
    daemon.wait_healthy()
    wait_for(lambda: str(daemon.health().get("last_sync_result") or "").startswith("sync:"), 30,
             what="a first sync")
    by_name = {p.name: p for p in _folders(ws)}
    hostile = [p for name, p in by_name.items() if any(b.split()[0] in name for b in EXTRA_BUYERS)]
    assert len(hostile) == len(EXTRA_BUYERS), sorted(by_name)
    # Errors whose text carries an order folder's path: a manifest edited into invalid YAML, and a save
    # that is not an image.
    (hostile[0] / MANIFEST).write_text("receipt_id: [unclosed\n", encoding="utf-8")
    (hostile[1] / "portrait.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 100)
    wait_for(lambda: "ManifestError" in daemon.output(), 30, what="the watcher to report the broken manifest")
    wait_for(lambda: "a reference download failed" in daemon.output(), 40, what="the refused buyer links")
    code, _ = daemon.terminate()
    assert code == 0

    logs = daemon.output() + "".join(p.read_text(encoding="utf-8", errors="replace")
                                     for p in (ws.root / ".kaalwatch" / "logs").glob("kaalwatch.log*"))
    receipts = [sb.receipt(rid) for rid in sb.receipt_ids]
    strings = _strings(receipts) | {p.name for p in _folders(ws)} | {MESSAGE, ANSWER}
    leaks = sorted(s for s in strings if s in logs)
    assert leaks == [], leaks
    assert "[folder " in logs  # the errors were logged, with a folder token in place of the name
