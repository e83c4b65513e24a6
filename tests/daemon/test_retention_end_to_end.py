"""Retention end to end: nine orders driven through every path against the sandbox and a real daemon, purged
by ``kaalwatch purge`` and by the daemon's own daily job, then every byte of the workspace searched.

Every process runs under umask 022 (the usual one), so the same run proves the modes too. The clock the test
controls is the configuration (retention days set to 0 once the orders are where the test wants them) and
the daily job's record (set two days back, as after a machine that was off).

Paths: delivered one-item (saved under a file named after the buyer, with a note quoting them), delivered
multi-item, cancelled, fully refunded, partially refunded then delivered, on hold then completed on Etsy,
completed on Etsy without approval, never completed (abandoned), and one delivered order removed by the
daemon's catch-up run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch import delivery, lifecycle
from kaalwatch.model import JobState, iso, utcnow
from kaalwatch.sandbox.seed import FAMILY_LISTING, PET_LISTING
from kaalwatch.settings import load_settings
from tests.daemon.conftest import Connected, DaemonProcess
from tests.daemon.test_end_to_end import png_bytes, save_like_photoshop
from tests.daemon.test_private_modes import loose
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

# One invented, unmistakable buyer per path: (name, pet's name answer, message).
BUYERS = {
    "delivered": ("Xanthippe Vellacourt", "Pennyworth", "at Thornbury Wharf"),
    "multi": ("Ottoline Graythwaite", "Snickerdoodle", "ring Quillfeather"),
    "cancelled": ("Barnaby Fenwright", "Marmaduke", "to Pemberly Crescent"),
    "refunded": ("Philippa Ashcombe", "Wolfgang", "to Harrowgate"),
    "partial": ("Leopold Thistlewood", "Bartholomew", "to Kestrelford"),
    "hold": ("Cordelia Winterbourne", "Fitzgerald", "call Brackenridge"),
    "no_approval": ("Evander Blackthorne", "Tiberius", "see Ravenscroft"),
    "abandoned": ("Seraphina Holloway", "Montgomery", "at Larkspur Lane"),
    "daily": ("Ignatius Pembroke", "Peregrine", "via Oakhurst Mews"),
}


def needles(name: str, pet: str, message: str) -> list[str]:
    words = [w for w in re.findall(r"\w+", message) if len(w) >= 5]
    return [name, *name.split(), pet, *words]


def set_retention(config: Path, **days: int) -> None:
    data = json.loads(config.read_text())
    data["retention"] = {**data.get("retention", {}), **days}
    config.write_text(json.dumps(data))


def pdf_text(data: bytes) -> bytes:
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            out.append(zlib.decompress(stream))
        except zlib.error:
            out.append(stream)
    return b"\n".join(out)


def image_text(path: Path) -> str:
    try:
        with Image.open(path) as im:
            parts = [str(v) for v in im.info.values()] + [str(v) for v in im.getexif().values()]
    except Exception:
        return ""
    return "\n".join(parts)


def scan(roots: list[Path], strings: list[str]) -> list[str]:
    """Every place under ``roots`` where one of ``strings`` appears, case-insensitively: names, raw bytes
    (SQLite main and WAL files included), decompressed PDF streams and image metadata."""
    hits = []
    wanted = [(s, s.casefold().encode()) for s in strings]
    for root in roots:
        for path in [root, *root.rglob("*")]:
            rel = path.relative_to(root.parent).as_posix()
            for text, _raw in wanted:
                if text.casefold() in rel.casefold():
                    hits.append(f"{text!r} in the name {rel}")
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            views = [data.lower()]
            if data.startswith(b"%PDF"):
                views.append(pdf_text(data).lower())
            if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
                views.append(image_text(path).casefold().encode())
            for text, raw in wanted:
                if any(raw in view for view in views):
                    hits.append(f"{text!r} in {rel}")
    return hits


class Drive:
    """The test's hands: the sandbox as the buyer and Etsy, the workspace as the artist."""

    def __init__(self, connected: Connected, config: Path) -> None:
        self.sb, self.ws, self.config = connected.sandbox, connected.ws, config
        self.ids: dict[str, int] = {}

    def order(self, key: str, *, listings: tuple[int, ...] = (PET_LISTING,)) -> int:
        name, pet, message = BUYERS[key]
        receipt = self.sb.add_order(listings[0], buyer_name=name, answers={7002: pet} if listings[0] == PET_LISTING
                                    else None, uploads=1, message=message, extra_listing_ids=list(listings[1:]))
        rid = self.ids[key] = int(receipt["receipt_id"])
        wait_for(lambda: self.ws.has_order(rid) and all(
            j.state is not JobState.AWAITING_REFERENCES for j in self.ws.load(rid).jobs), 60,
            what=f"order {key} with its references")
        return rid

    def save(self, rid: int, file_name: str | None = None) -> None:
        order, folder = self.ws.load(rid), self.ws.folder_of(rid)
        for n, job in enumerate(order.jobs):
            target = folder / job.folder if job.folder else folder
            save_like_photoshop(target, file_name or f"art {n}.png", png_bytes(rid % 1000 + n))

        def previewed() -> bool:
            return all(j.latest and j.latest.preview for j in self.ws.load(rid).jobs)

        wait_for(previewed, 60, what=f"versions of order {rid}")

    def approve_and_deliver(self, rid: int) -> None:
        with self.ws.edit(rid) as order:
            for job in order.jobs:
                lifecycle.approve(order, job.job_id, job.latest.number, actor="review")
        settings = load_settings(self.config, env={}, use_default_path=False)
        # Small test artworks miss the pet workflow's 2048 px / 300 DPI promises: built "anyway", as the owner would.
        assert delivery.prepare(self.ws, settings, rid, anyway=True).ok
        self.sb.complete(rid)
        wait_for(lambda: all(j.state is JobState.DELIVERED for j in self.ws.load(rid).jobs), 60,
                 what=f"order {rid} delivered by sync")


def test_every_path_leaves_no_buyer_byte_behind(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    ws, sb, config = connected.ws, connected.sandbox, connected.config
    os.umask(0o022)  # every process below inherits it (the autouse fixture restores the test's own)
    drive = Drive(connected, config)
    first = daemon_factory(config, ws.root, "drive").start()
    first.wait_healthy()

    rid = drive.order("delivered")
    drive.save(rid, file_name=f"{BUYERS['delivered'][0]} final.png")
    (ws.folder_of(rid) / "notes.txt").write_text(f"{BUYERS['delivered'][0]} wants Pennyworth smiling; usage ok\n")
    drive.approve_and_deliver(rid)
    rid = drive.order("multi", listings=(PET_LISTING, FAMILY_LISTING))
    drive.save(rid)
    drive.approve_and_deliver(rid)
    sb.cancel(drive.order("cancelled"))
    sb.refund(drive.order("refunded"))
    rid = drive.order("partial")
    sb.refund(rid, partial=True)
    drive.save(rid)
    drive.approve_and_deliver(rid)
    rid = drive.order("hold")
    with ws.edit(rid) as order:
        lifecycle.hold(order, order.jobs[0].job_id, f"{BUYERS['hold'][0]} is travelling", actor="review")
    sb.complete(rid)
    rid = drive.order("no_approval")
    drive.save(rid)
    sb.complete(rid)
    drive.order("abandoned")
    for key in ("cancelled", "refunded", "hold", "no_approval"):
        wait_for(lambda key=key: ws.load(drive.ids[key]).etsy_status.lower() in (
            "canceled", "fully refunded", "completed"), 60, what=f"order {key} finished on Etsy")
    assert first.terminate()[0] == 0, first.output()
    strings = [s for buyer in BUYERS.values() for s in needles(*buyer)]
    # Reading a SQLite file through another descriptor drops this process's locks on it (POSIX): close first.
    ws.close()
    found = " ".join(scan([ws.root], strings))
    assert all(repr(name) in found for name, _pet, _message in list(BUYERS.values())[:-1])  # the scan sees them

    # Every finished (and the abandoned) order is due now: `kaalwatch purge`, a real process.
    set_retention(config, files_days=0, anonymise_days=0, abandoned_days=0)
    purged = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "purge"],
                            capture_output=True, text=True, timeout=120)
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert "failed" in purged.stdout and ", 0 failed" in purged.stdout

    # The ninth order lives with abandonment far away, then the daemon's catch-up run removes it.
    set_retention(config, files_days=0, anonymise_days=0, abandoned_days=540)
    ws.write_state("retention", {"last_run": iso(utcnow())})  # ran today: no catch-up at this start
    second = daemon_factory(config, ws.root, "daily").start()
    second.wait_healthy()
    rid = drive.order("daily")
    drive.save(rid)
    drive.approve_and_deliver(rid)
    assert ws.load(rid).anonymised_at is None and second.terminate()[0] == 0
    ws.write_state("retention", {"last_run": iso(utcnow() - timedelta(days=2))})  # the machine was off
    third = daemon_factory(config, ws.root, "catch-up").start()
    wait_for(lambda: ws.load(drive.ids["daily"]).anonymised_at, 60, what="the catch-up run to anonymise it")
    wait_for(lambda: ws.read_state("retention").get("counts"), 30, what="the run's record")
    assert third.terminate()[0] == 0, third.output()

    for key, rid in drive.ids.items():
        order = ws.load(rid)
        assert order.anonymised_at and order.files_purged_at, key
    logs = [p for p in tmp_path.iterdir() if p.suffix == ".log"]
    ws.close()
    hits = scan([ws.root], strings)
    assert hits == [], "\n".join(hits)
    assert not [s for s in strings for log in logs if s.casefold() in log.read_text(errors="replace").casefold()]
    note = ws.folder_of(drive.ids["delivered"]) / "notes.txt"
    assert note.read_text() == "[removed] [removed] wants [removed] smiling; usage ok\n"
    assert (ws.folder_of(drive.ids["delivered"]) / "redacted redacted final.png").is_file()
    # The artist's own files keep the modes the artist's tools gave them; everything else is the tool's.
    artist = {"notes.txt", "art 0.png", "art 1.png", "redacted redacted final.png"}
    assert loose(ws.root, skip=lambda p: p.name in artist and ".kaalwatch" not in p.parts) == []
    state = ws.read_state("retention")
    assert state["counts"]["anonymised"] == 1 and state["next"]["at"]
