"""Recorded Etsy traffic replayed as a user would: ``kaalwatch sandbox --data``, ``auth``, ``sync``, processes all.

The recordings (``tests/data/etsy/recorded``) mix every body shape and timestamp spelling. Their file URLs
point at Etsy's CDN; the copy used here points them at a loopback port the download guard refuses without
connecting, so the test never touches the internet (the failed downloads are recorded on the orders).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from kaalwatch.settings import load_settings
from kaalwatch.store import Workspace
from tests.sandbox.test_replay import RECEIPTS, RECORDED, moment

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_FILES = "http://127.0.0.1:9"


def kaalwatch(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kaalwatch", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120, check=False)


@pytest.fixture
def replayed(tmp_path: Path) -> Iterator[str]:
    """``kaalwatch sandbox --data`` as its own process, serving a copy of the recordings; yields its URL."""
    data = tmp_path / "recorded"
    shutil.copytree(RECORDED, data)
    for path in data.glob("*.json"):
        path.write_text(path.read_text(encoding="utf-8").replace("https://i.etsystatic.com", OFFLINE_FILES),
                        encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "sandbox", "--data", str(data), "--port", "0",
                             "--auto-approve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, cwd=ROOT)
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("Etsy sandbox listening at "), first + proc.stderr.read()  # type: ignore[union-attr]
        yield first.rsplit(" ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


def user_env(tmp_path: Path, url: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "KAALWATCH_WORKSPACE": str(tmp_path / "ws"),
            "KAALWATCH_ETSY_BASE_URL": url, "KAALWATCH_ETSY_KEYSTRING": "sandbox-keystring",
            "KAALWATCH_ETSY_SHARED_SECRET": "sandbox-secret", "KAALWATCH_ETSY_REDIRECT_PORT": "3003"}


def connect_by_paste(env: dict[str, str]) -> None:
    """``kaalwatch auth --no-browser``: open the printed URL (consent auto-approved), paste where it went."""
    proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "auth", "--no-browser"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    url = ""
    while not url:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        url = line.strip() if "/oauth/connect?" in line else ""
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    out, err = proc.communicate(location + "\n", timeout=60)
    assert proc.returncode == 0 and "WhiskerAndInkPortraits" in out, err


@pytest.mark.slow
def test_recorded_traffic_replays_through_the_cli_and_syncs(replayed: str, tmp_path: Path) -> None:
    env = user_env(tmp_path, replayed)
    assert kaalwatch(["init"], env).returncode == 0
    connect_by_paste(env)
    first = kaalwatch(["sync", "--since", "2026-11-01"], env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1].startswith("sync: 5 new, 0 updated"), first.stdout

    ws = Workspace(load_settings(env={"KAALWATCH_WORKSPACE": env["KAALWATCH_WORKSPACE"]}, use_default_path=False))
    try:
        paid = [3012350001, 3012350002, 3012350003, 3012350004, 3012350005]  # 6 completed, 7 refunded: no folders
        assert sorted(ws.receipt_ids()) == paid
        page = json.loads((RECORDED / "getShopReceipts_page1.json").read_text())
        recorded = {r["receipt_id"]: r for r in page["results"]}
        r2 = ws.load(3012350002)  # the proxy-rewritten ISO update time is the update time
        assert r2.etsy_updated_at == datetime.fromtimestamp(moment(recorded[3012350002]["updated_timestamp"]), UTC)
        assert r2.etsy_updated_at != r2.ordered_at
        family = ws.load(3012350003)  # ISO everywhere, labeled uploads, a gift
        assert family.ordered_at == datetime(2026, 11, 26, 7, 55, 30, tzinfo=UTC) and family.is_gift
        answers = {a.question: a for a in family.jobs[0].answers}
        assert answers["One photo per person"].answer == "Mum, Dad, Chidi"
        assert answers["Names to write under the portrait"].answer == "Ngozi & Emeka & Chidi"
        couple = ws.load(3012350004)  # numeric strings; its line item came from a transactions page
        assert [a.answer for a in couple.jobs[0].answers if a.question == "Personalization"] == [
            "Priya & Sam\n21 June 2025"]
        two = ws.load(3012350005)  # line items from a single-object file and a bare array
        assert [(j.job_id, j.quantity) for j in two.jobs] == [("4400000051", 2), ("4400000052", 1)]
        assert ws.load(3012350001).buyer_name == "Siobhán O'Neill"
        everything = [json.loads(p.read_text()) for p in (RECORDED).glob("*.json")]
        stamps = [moment(r["updated_timestamp"]) for body in everything
                  for r in (body["results"] if isinstance(body, dict) and "results" in body else
                            body if isinstance(body, list) else [body])
                  if isinstance(r, dict) and "receipt_id" in r and "transaction_id" not in r]
        assert len(stamps) == len(RECEIPTS)
        assert ws.read_state("sync")["high_water"] == max(stamps)  # set, whatever the spelling
    finally:
        ws.close()

    admin = f"{replayed}/_sandbox"
    requests.delete(f"{admin}/requests", timeout=5)
    for rid, action in ((3012350003, "complete"), (3012350001, "refund")):
        assert requests.post(f"{admin}/receipts/{rid}/{action}", json={}, timeout=5).status_code == 200
    # The newest change is to a receipt whose update time is an ISO string: the mark must follow it.
    requests.post(f"{admin}/clock/advance", json={"seconds": 60}, timeout=5)
    touched = requests.post(f"{admin}/receipts/3012350002/touch", json={}, timeout=5).json()
    assert isinstance(touched["updated_timestamp"], str)
    second = kaalwatch(["sync"], env)
    assert second.returncode == 0, second.stderr
    # The touch changes only the update time, which the manifest records without counting it as news.
    assert "0 new, 2 updated, 1 cancelled, 1 completed" in second.stdout.strip().splitlines()[-1], second.stdout
    queries = [r["query"] for r in requests.get(f"{admin}/requests", timeout=5).json()
               if r["operation"] == "getShopReceipts"]
    # An incremental sync from the high-water mark, not another first import over 60 days.
    assert queries and all("min_last_modified" in q and "min_created" not in q for q in queries[:1])
    ws = Workspace(load_settings(env={"KAALWATCH_WORKSPACE": env["KAALWATCH_WORKSPACE"]}, use_default_path=False))
    try:
        assert ws.load(3012350003).etsy_completed and ws.load(3012350001).etsy_status == "Fully Refunded"
        assert ws.load(3012350002).etsy_updated_at > r2.etsy_updated_at  # type: ignore[operator]
        assert ws.read_state("sync")["high_water"] == moment(touched["updated_timestamp"])
    finally:
        ws.close()


def test_a_recording_it_cannot_place_stops_the_command_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "recorded"
    data.mkdir()
    shutil.copy(RECORDED / "getShopReceipts_page1.json", data)
    (data / "transactions_v2.json").write_text(json.dumps(
        {"count": 1, "results": [{"transaction_id": 1, "receipt_id": 2, "creation_tsz": 1500000000}],
         "params": {}, "type": "Transaction", "pagination": {}}))
    done = kaalwatch(["sandbox", "--data", str(data), "--port", "0"], {**os.environ})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "kaalwatch: error: sandbox data file transactions_v2.json: an Etsy API v2 body (type 'Transaction'); v2 "
        "was shut down in 2022 (save receipts, transactions, listings, listing images, personalization questions, "
        "a shop or getMe exactly as Etsy's v3 API returned them)"]
