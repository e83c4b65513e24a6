"""End to end: `kaalwatch run` as a real process against the sandbox shop and a temporary workspace.

First run: a new sandbox order becomes a folder; artwork saved into it the way Photoshop does (temp file,
then rename) becomes a version with a watermarked preview; the review page lists it over HTTP; it is
approved through the page with a real login session and CSRF token; SIGTERM stops everything with exit 0.

Second run: several saves are in flight when the process is killed with SIGKILL; the restarted daemon
finishes them, with every save exactly one version and every version its preview — nothing lost or doubled.
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from kaalwatch.model import JobState
from kaalwatch.store import Workspace
from tests.daemon.conftest import Connected, DaemonProcess
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


def png_bytes(seed: int, size: tuple[int, int] = (1200, 900)) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    for _ in range(40):  # some shapes, so each file is a distinct picture of realistic size
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        image.paste((rng.randrange(256), rng.randrange(256), rng.randrange(256)), (x, y, x + 150, y + 120))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def save_like_photoshop(folder: Path, name: str, data: bytes) -> Path:
    """Write a hidden temp file in chunks, fsync, then rename over the real name (what Photoshop does)."""
    temp = folder / f".{name}.tmp"
    with open(temp, "wb") as handle:
        for start in range(0, len(data), 64 * 1024):
            handle.write(data[start:start + 64 * 1024])
            handle.flush()
        os.fsync(handle.fileno())
    target = folder / name
    os.replace(temp, target)
    return target


def folder_of(ws: Workspace, receipt_id: int) -> Path | None:
    """The order's folder once sync has finished making it (the manifest is written last)."""
    return next((p for p in ws.orders_dir.iterdir()
                 if p.name.startswith(f"{receipt_id} ") and (p / "order.yaml").is_file()), None)


class FormParser(HTMLParser):
    """The inputs of every form on a page, by the form's action."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = self.forms.setdefault(a.get("action", ""), {})
        elif tag in ("input", "option") and self._current is not None:
            if tag == "input" and a.get("name"):
                self._current.setdefault(a["name"], a.get("value", ""))
            elif tag == "option" and "_select" in self._current:
                self._current.setdefault(self._current["_select"], a.get("value", ""))
        elif tag == "select" and self._current is not None and a.get("name"):
            self._current["_select"] = a["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms_of(html: str) -> dict[str, dict[str, str]]:
    parser = FormParser()
    parser.feed(html)
    return {action: {k: v for k, v in fields.items() if k != "_select"} for action, fields in parser.forms.items()}


def set_password(config: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "set-password", "--stdin"],
                            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_order_to_approval_through_a_real_daemon_then_sigterm(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    ws, sb = connected.ws, connected.sandbox
    config = connected.config
    config.write_text(config.read_text().replace('"require_password": false', '"require_password": true'))
    set_password(config)
    daemon = daemon_factory(config, ws.root, "e2e").start()
    health = daemon.wait_healthy()
    base = wait_for(lambda: daemon.health().get("review_url"), 20, what="the review page's address")
    wait_for(lambda: (daemon.health().get("last_sync_result") or "").startswith("sync:"), 30, what="a first sync")

    receipt_id = int(sb.add_order()["receipt_id"])
    folder = wait_for(lambda: folder_of(ws, receipt_id), 30, what=f"a folder for new order {receipt_id}")
    save_like_photoshop(folder, "portrait.png", png_bytes(1))

    def first_version() -> Any:
        job = ws.load(receipt_id).jobs[0]
        return job.versions[0] if job.versions and job.versions[0].preview and job.versions[0].thumb else None

    version = wait_for(first_version, 30, what="version 1 with its preview")
    assert version.source_name == "portrait.png"
    preview = ws.tool_path(version.preview)
    with Image.open(preview) as im:
        assert im.format == "JPEG" and max(im.size) <= ws.settings.preview.long_edge
    job_id = ws.load(receipt_id).jobs[0].job_id

    with requests.Session() as http:
        # Not logged in: the list sends us to the login page.
        assert "/login" in http.get(base, timeout=10).url
        login = http.get(f"{base}login", timeout=10)
        token = forms_of(login.text)[next(a for a in forms_of(login.text) if "login" in a)]["csrf_token"]
        r = http.post(f"{base}login", data={"csrf_token": token, "password": PASSWORD}, timeout=10)
        assert r.status_code == 200 and "/login" not in r.url, r.text[:300]
        listing = http.get(base, timeout=10)
        assert str(receipt_id) in listing.text
        page = http.get(f"{base}jobs/{receipt_id}/{job_id}", timeout=10)
        assert page.status_code == 200
        src = re.search(r'<img src="([^"]+/v/1/thumb)"', page.text)
        assert src, "the job page shows version 1's thumbnail"
        thumb = http.get(f"{base.rstrip('/')}{src.group(1)}", timeout=10)
        assert thumb.status_code == 200 and thumb.headers["Content-Type"].startswith("image/jpeg")
        approve_action = next(a for a in forms_of(page.text) if a.endswith("/approve"))
        fields = forms_of(page.text)[approve_action]
        assert fields.get("version") == "1" and fields.get("csrf_token")
        # Without the token the page refuses and nothing changes.
        bad = http.post(f"{base.rstrip('/')}{approve_action}", data={k: v for k, v in fields.items()
                                                                   if k != "csrf_token"}, timeout=10)
        assert bad.status_code == 400, (bad.url, [r.status_code for r in bad.history], bad.text[:500])
        assert ws.load(receipt_id).jobs[0].state is not JobState.APPROVED
        done = http.post(f"{base.rstrip('/')}{approve_action}", data=fields, timeout=10)
        assert done.status_code == 200, done.text[:300]
    job = ws.load(receipt_id).jobs[0]
    assert job.state is JobState.APPROVED and job.approved_version == 1
    assert any(e.event for e in ws.load(receipt_id).history if e.actor == "review")

    code, took = daemon.terminate()
    assert code == 0, daemon.output()
    assert took < 10, f"stopping took {took:.1f} s"
    assert daemon.health()["running"] is False
    assert health["pid"] == daemon.pid
    log = daemon.output()
    assert "Traceback" not in log, log
    buyer = sb.receipt(receipt_id)["name"]
    assert buyer not in log  # receipt ids in the logs, never buyer names


def test_sigkill_in_the_middle_of_work_then_restart_finishes_it(
        connected: Connected, daemon_factory: Callable[..., DaemonProcess]) -> None:
    ws, sb = connected.ws, connected.sandbox
    first = daemon_factory(connected.config, ws.root, "killed").start()
    first.wait_healthy()
    wait_for(lambda: (first.health().get("last_sync_result") or "").startswith("sync:"), 30, what="a first sync")
    receipts = sorted(int(p.name.split()[0]) for p in ws.orders_dir.iterdir() if p.is_dir())
    assert len(receipts) >= 4, "the seeded shop should have given a few orders"
    # One save into each of several single-job orders at once: the daemon works through them one by one.
    targets = []
    for receipt_id in receipts:
        order = ws.load(receipt_id)
        if len(order.jobs) == 1:
            targets.append(receipt_id)
    targets = targets[:6]
    for n, receipt_id in enumerate(targets):
        folder = folder_of(ws, receipt_id)
        assert folder is not None
        save_like_photoshop(folder, f"artwork {n}.png", png_bytes(100 + n, (2400, 1800)))

    def versions_done() -> int:
        return sum(1 for r in targets if (j := ws.load(r).jobs[0]).versions and j.versions[0].preview)

    wait_for(lambda: any(ws.load(r).jobs[0].versions for r in targets), 60, what="the first version")
    first.kill()  # SIGKILL: no handler runs, the lock is released only because the process is gone
    finished_before_kill = versions_done()
    assert finished_before_kill < len(targets), "the kill came too late to interrupt any work"

    second = daemon_factory(connected.config, ws.root, "restarted").start()
    second.wait_healthy()
    wait_for(lambda: versions_done() == len(targets), 90, what="every save to become a version with a preview")
    # Give the watcher a quiet moment to prove it adds nothing more (polling, not a fixed sleep).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for receipt_id in targets:
            job = ws.load(receipt_id).jobs[0]
            assert len(job.versions) == 1, f"order {receipt_id}: {len(job.versions)} versions for one save"
        time.sleep(0.25)
    for receipt_id in targets:
        version = ws.load(receipt_id).jobs[0].versions[0]
        assert ws.tool_path(version.copy).is_file()
        assert ws.tool_path(version.preview).is_file() and ws.tool_path(version.thumb).is_file()
        copies = list(ws.tool_path(version.copy).parent.iterdir())
        assert [c.name for c in copies if not c.name.startswith(".")] == [ws.tool_path(version.copy).name]
    # Orders were not doubled by the interrupted and repeated syncs either.
    names = [p.name.split()[0] for p in ws.orders_dir.iterdir() if p.is_dir()]
    assert len(names) == len(set(names))
    assert set(int(n) for n in names) <= set(sb.receipt_ids)
    code, _ = second.terminate()
    assert code == 0, second.output()
    assert not re.search(r"Traceback", second.output()), second.output()
