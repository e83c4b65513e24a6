"""The server as a process citizen: start-up time, concurrency, clean stop, files, admin API, replay, CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from PIL import Image

from kaalwatch.commands.sandbox import sandbox as sandbox_command
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.sandbox.seed import PET_LISTING
from tests.support.polling import wait_for


def test_start_is_well_under_a_second_even_with_5000_receipts() -> None:
    t0 = time.perf_counter()
    with Sandbox(seed=9) as sb:
        small = time.perf_counter() - t0
        assert requests.get(f"{sb.url}/_sandbox", timeout=5).status_code == 200
    t0 = time.perf_counter()
    with Sandbox(seed=9, receipts=5000) as sb:
        big = time.perf_counter() - t0
        assert len(sb.receipt_ids) > 5000
    assert small < 0.3, small
    assert big < 3.0, big


def test_concurrent_requests(sandbox: Sandbox) -> None:
    barrier = threading.Barrier(16)

    def worker(_: int) -> list[int]:
        barrier.wait()
        with requests.Session() as s:
            return [s.get(f"{sandbox.url}/v3/application/listings/{PET_LISTING}", timeout=10,
                          headers={"x-api-key": sandbox.api_key}).status_code for _ in range(5)]

    with ThreadPoolExecutor(16) as pool:
        codes = [c for batch in pool.map(worker, range(16)) for c in batch]
    assert codes == [200] * 80
    assert sandbox.calls("getListing") == 80


def test_stop_is_clean_with_open_keepalive_and_pending_latency() -> None:
    before = set(threading.enumerate())
    sb = Sandbox().start()
    session = requests.Session()
    assert session.get(f"{sb.url}/v3/application/openapi-ping", headers={"x-api-key": sb.api_key},
                       timeout=5).status_code == 200
    sb.inject_fault(latency=30, count=1)
    slow = threading.Thread(target=lambda: _swallow(lambda: requests.get(
        f"{sb.url}/v3/application/openapi-ping", headers={"x-api-key": sb.api_key}, timeout=60)))
    slow.start()
    wait_for(lambda: len(sb._httpd.open_sockets) >= 2)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    sb.stop()
    assert time.perf_counter() - t0 < 2
    slow.join(5)
    session.close()
    assert set(threading.enumerate()) - before == set()


def _swallow(fn) -> None:
    with contextlib.suppress(requests.RequestException):
        fn()


def test_files_are_real_images(sandbox: Sandbox) -> None:
    images = requests.get(f"{sandbox.url}/v3/application/listings/{PET_LISTING}/images", timeout=5,
                          headers={"x-api-key": sandbox.api_key}).json()["results"]
    full = requests.get(images[0]["url_fullxfull"], timeout=5)
    assert full.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(full.content)).size == (1500, 1200)
    uploads = [v["formatted_value"] for i in sandbox.receipt_ids for t in sandbox.receipt(i)["transactions"]
               for v in t["variations"] if v["formatted_value"].startswith("http")]
    assert uploads
    first = uploads[0].replace("\n", ",").split(",")[0].strip()
    assert first.startswith(f"{sandbox.url}/_files/uploads/")
    Image.open(io.BytesIO(requests.get(first, timeout=5).content)).verify()
    assert requests.get(f"{sandbox.url}/_files/uploads/nope/x.jpg", timeout=5).status_code == 404
    assert requests.get(f"{sandbox.url}/_files/il/1/fullxfull.jpg", timeout=5).status_code == 404


def test_orders_keep_arriving() -> None:
    with Sandbox(orders_every=0.1) as sb:
        start = len(sb.receipt_ids)
        wait_for(lambda: len(sb.receipt_ids) >= start + 2)


def test_hostile_receipt_only_on_request() -> None:
    with Sandbox() as sb:
        values = [v["formatted_value"] for i in sb.receipt_ids for t in sb.receipt(i)["transactions"]
                  for v in t["variations"]]
        assert not any("10.0.0.1" in v for v in values)
        r = requests.post(f"{sb.url}/_sandbox/orders/hostile", json={"other_port": 1234}, timeout=5)
        assert r.status_code == 201
        upload = r.json()["transactions"][0]["variations"][0]["formatted_value"]
        assert "http://127.0.0.1:1234/" in upload and "http://10.0.0.1/" in upload
    with Sandbox(hostile=True) as sb:
        assert any("10.0.0.1" in json.dumps(sb.receipt(i)) for i in sb.receipt_ids)


def test_admin_http_api(sandbox: Sandbox, api) -> None:
    admin = f"{sandbox.url}/_sandbox"
    info = requests.get(admin, timeout=5).json()
    assert info["shop_id"] == sandbox.shop_id and info["x_api_key"] == sandbox.api_key
    order = requests.post(f"{admin}/orders", json={"listing_id": PET_LISTING, "buyer_name": "Ann", "uploads": 2},
                          timeout=5)
    rid = order.json()["receipt_id"]
    assert order.status_code == 201 and sandbox.receipt(rid)["name"] == "Ann"
    assert requests.post(f"{admin}/orders", json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.post(f"{admin}/receipts/{rid}/refund", json={"partial": True},
                         timeout=5).json()["status"] == "Partially Refunded"
    assert requests.post(f"{admin}/receipts/{rid}/complete", timeout=5).json()["status"] == "Completed"
    assert requests.post(f"{admin}/receipts/{rid}/cancel", timeout=5).json()["status"] == "Canceled"
    assert requests.post(f"{admin}/receipts/{rid}/touch", json={"changes": {"message_from_seller": "hi"}},
                         timeout=5).json()["message_from_seller"] == "hi"
    requests.post(f"{admin}/faults", json={"status": 502, "count": 1}, timeout=5)
    assert len(requests.get(f"{admin}/faults", timeout=5).json()) == 1
    assert api("GET", "/v3/application/users/me").status_code == 502
    requests.post(f"{admin}/tokens/expire", timeout=5)
    assert api("GET", "/v3/application/users/me").status_code == 401
    log = requests.get(f"{admin}/requests", timeout=5).json()
    assert all(not r["path"].startswith("/_sandbox") for r in log)
    token_calls = [r for r in log if r["operation"] == "oauthToken"]
    assert token_calls and token_calls[0]["form"]["code_verifier"] == "***"
    me_call = [r for r in log if r["operation"] == "getMe"][-1]
    assert me_call["headers"]["x-api-key"] == f"{sandbox.keystring}:***"
    assert me_call["headers"]["authorization"] == f"Bearer {sandbox.user_id}.***"
    requests.delete(f"{admin}/requests", timeout=5)
    assert sandbox.requests == []
    now = requests.post(f"{admin}/clock/advance", json={"seconds": 60}, timeout=5).json()["now"]
    assert now == sandbox.clock.now()
    assert requests.post(f"{admin}/nope", timeout=5).status_code == 404
    assert requests.post(f"{admin}/receipts/abc/cancel", timeout=5).status_code == 400
    assert requests.post(f"{admin}/orders", json={"listing_id": 42}, timeout=5).status_code == 400


def test_replay_of_recorded_etsy_responses(tmp_path: Path) -> None:
    with Sandbox(seed=4, clock=Clock(frozen=True)) as source:
        shop = source.shop
        (tmp_path / "receipts_page.json").write_text(json.dumps(shop.query_receipts({"limit": "100"})))
        (tmp_path / "listing.json").write_text(json.dumps(shop.listing(PET_LISTING, ["Images", "Personalization"])))
        (tmp_path / "shop.json").write_text(json.dumps(shop.shop))
        expected = [source.receipt(i) for i in source.receipt_ids]
        questions = shop.listing_personalization(PET_LISTING)
    with Sandbox(data_dir=tmp_path) as replay:
        assert [replay.receipt(i) for i in replay.receipt_ids] == expected
        assert replay.shop.listing_personalization(PET_LISTING) == questions
        assert replay.shop_id == shop.shop_id and replay.user_id == shop.user_id
        assert replay.add_order(PET_LISTING)["receipt_id"] not in {r["receipt_id"] for r in expected}


def test_cli_help_documents_every_option() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--data", "--seed", "--keystring", "--shared-secret", "--orders-every",
                   "--auto-approve", "--rate-per-second", "--rate-per-day"):
        assert option in result.output
    assert all(p.help for p in sandbox_command.params)


@pytest.mark.parametrize(("stop", "int_ignored"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                   (signal.SIGINT, True)])
def test_cli_serves_until_interrupted(stop: signal.Signals, int_ignored: bool) -> None:
    # Started with SIGINT ignored (a background job of a script, as CI may start the tests), Python raises
    # no KeyboardInterrupt: the command must still stop on Ctrl+C.
    code = "from kaalwatch.commands.sandbox import sandbox; sandbox(['--port', '0', '--seed', '2'])"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", code]
    if int_ignored:
        command = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *command]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=Path(__file__).resolve().parents[2])
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("Etsy sandbox listening at http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        r = requests.get(f"{url}/v3/application/openapi-ping",
                         headers={"x-api-key": "sandbox-keystring:sandbox-secret"}, timeout=5)
        assert r.status_code == 200
    finally:
        proc.send_signal(stop)
        assert proc.wait(10) == 0
    assert "Stopping sandbox." in proc.stderr.read()  # type: ignore[union-attr]
