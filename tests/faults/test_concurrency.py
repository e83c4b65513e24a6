"""Races between the parts: two browser sessions approving at once, an approval racing a new save, and a
hand-run ``kaalwatch sync`` while the daemon syncs. Each ends in one well-defined result, in history."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from kaalwatch import lifecycle
from kaalwatch.etsy.oauth import connect
from kaalwatch.model import JobState, Order, Version, utcnow
from kaalwatch.sandbox import Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.faults.conftest import REPO, clean_env, write_config
from tests.faults.test_crash import free_port
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def add_version(order: Order, job_id: str, tag: str) -> None:
    job = order.job(job_id)
    number = len(job.versions) + 1
    sha = hashlib.sha256(tag.encode()).hexdigest()
    lifecycle.add_version(order, job_id, Version(number=number, source_name=f"{tag}.png", sha256=sha, size=1,
                                                 saved_at=utcnow(), copy=f"versions/{tag}.png"), "watcher")


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html) or re.search(
        r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, f"no {name} on the page"
    return match.group(1)


def test_two_browser_sessions_approving_different_versions_at_once_give_one_approval(
        settings: Settings, ws: Workspace, make_order: Callable[..., Order]) -> None:
    from review_app import create_app, security
    from review_app.server import ReviewServer

    order = make_order()
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    with ws.edit(order.receipt_id) as current:
        for tag in ("a", "b", "c"):
            add_version(current, job_id, tag)
    security.set_password(ws, PASSWORD)
    server = ReviewServer(create_app(settings, ws), "127.0.0.1", 0)
    server.start()
    try:
        browser = {"Sec-Fetch-Site": "same-origin", "Origin": server.url.rstrip("/")}
        sessions = [requests.Session() for _ in range(2)]
        forms = []
        for session in sessions:
            token = _field(session.get(f"{server.url}/login", timeout=10).text, "csrf_token")
            done = session.post(f"{server.url}/login", data={"password": PASSWORD, "csrf_token": token},
                                headers=browser, allow_redirects=False, timeout=10)
            assert done.status_code in (302, 303), done.status_code
            page = session.get(f"{server.url}/jobs/{order.receipt_id}/{job_id}", timeout=10).text
            forms.append({"csrf_token": _field(page, "csrf_token"), "seen": _field(page, "seen")})
        barrier = threading.Barrier(2)
        answers: list[int] = [0, 0]

        def approve(i: int, number: int) -> None:
            barrier.wait()
            answers[i] = sessions[i].post(f"{server.url}/jobs/{order.receipt_id}/{job_id}/approve",
                                          data={**forms[i], "version": str(number)}, headers=browser,
                                          allow_redirects=False, timeout=30).status_code

        threads = [threading.Thread(target=approve, args=(i, n)) for i, n in ((0, 2), (1, 3))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert answers == [303, 303]  # both answered with the page again (one with a refusal message)
        for session in sessions:
            session.close()
    finally:
        server.stop()
    job = ws.load(order.receipt_id).jobs[0]
    approvals = [e for e in ws.load(order.receipt_id).history if e.event in ("approved", "approval_changed")]
    assert job.state is JobState.APPROVED and job.approved_version in (2, 3)
    assert len(approvals) == 1, [e.event for e in ws.load(order.receipt_id).history]


def _approve_v1(root: Path, receipt_id: int, job_id: str, barrier: threading.Barrier) -> None:
    worker = Workspace(Settings(workspace=root))
    barrier.wait()
    with worker.edit(receipt_id) as order:
        lifecycle.send_proof(order, job_id, 1)
        lifecycle.record_answer(order, job_id, True)
    worker.close()


def _save_v2(root: Path, receipt_id: int, job_id: str, barrier: threading.Barrier) -> None:
    worker = Workspace(Settings(workspace=root))
    barrier.wait()
    with worker.edit(receipt_id) as order:
        add_version(order, job_id, "second save")
    worker.close()


@pytest.mark.parametrize("round_", range(6))
def test_an_approval_racing_a_new_save_ends_in_one_defined_state_with_both_in_history(
        ws: Workspace, make_order: Callable[..., Order], round_: int) -> None:
    order = make_order()
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    with ws.edit(order.receipt_id) as current:
        add_version(current, job_id, "first save")
    barrier = threading.Barrier(2)
    # Separate Workspace objects: separate lock handles, as two processes would have.
    threads = [threading.Thread(target=fn, args=(ws.root, order.receipt_id, job_id, barrier))
               for fn in (_approve_v1, _save_v2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    final = ws.load(order.receipt_id)
    job = final.jobs[0]
    events = [e.event for e in final.history]
    assert [v.number for v in job.versions] == [1, 2]
    assert any(e.endswith("approved") for e in events), events
    approved_at = max(i for i, e in enumerate(events) if e == "buyer_approved")
    saved_at = next(i for i, e in enumerate(final.history) if e.event == "version_added" and e.details["version"] == 2)
    if saved_at > approved_at:
        # The save came second: the approval of version 1 was cleared, and history says so.
        assert job.approved_version is None and job.state is JobState.IN_PROGRESS, (job.state, events)
        assert events[saved_at + 1] == "approval_cleared", events
    else:
        assert job.approved_version == 1 and job.state is JobState.APPROVED


def test_a_hand_run_sync_while_the_daemon_syncs_imports_each_order_once(tmp_path: Path, settings: Settings) -> None:
    with Sandbox(seed=5, auto_approve=True, rate_per_second=100_000, rate_per_day=1_000_000) as sb:
        ws_root = tmp_path / "ws"
        config = write_config(tmp_path / "config.yaml", {
            "workspace": str(ws_root),
            "etsy": {"base_url": sb.url, "redirect_port": 0, "rate_per_second": 50.0},
            "sync": {"interval_minutes": 0.05},
            "watcher": {"rescan_minutes": 10.0, "workers": 1},
            "review": {"port": free_port()},
        })
        env = clean_env(KAALWATCH_ETSY_KEYSTRING=sb.keystring, KAALWATCH_ETSY_SHARED_SECRET=sb.shared_secret)
        s = dataclasses.replace(settings, workspace=ws_root, etsy=dataclasses.replace(
            settings.etsy, base_url=sb.url, keystring=sb.keystring, shared_secret=sb.shared_secret, redirect_port=0))
        ws = Workspace(s)
        ws.create()
        connect(s, ws, lambda url: requests.get(url, timeout=10), output=lambda line: None)
        daemon = subprocess.Popen([sys.executable, "-m", "kaalwatch", "--config", str(config), "run"], cwd=REPO,
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ours: set[int] = set()
        try:
            for _ in range(5):
                ours.update(sb.add_order()["receipt_id"] for _ in range(3))
                manual = subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "sync"],
                                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
                assert manual.returncode == 0, manual.stderr
            wait_for(lambda: ws.refresh_index() is not None and ours <= set(ws.receipt_ids()), 60,
                     what="the daemon and the hand-run syncs to import every order")
        finally:
            daemon.terminate()
            _, err = daemon.communicate(timeout=60)
        assert daemon.returncode == 0, err[-2000:]
        counts = collections.Counter(order.receipt_id for _, order in ws.iter_orders())
        assert [rid for rid, n in counts.items() if n != 1] == []
        for rid in ours:
            created = [e for e in ws.load(rid).history if e.event == "order_created"]
            assert len(created) == 1, rid
        ws.close()
