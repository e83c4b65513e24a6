"""Rate limits (headers, per-second and daily 429s) and every injected fault kind."""

from __future__ import annotations

import time

import pytest
import requests

from kaalwatch.sandbox import Clock, Sandbox
from tests.sandbox.conftest import login

LIMIT_HEADERS = ("x-limit-per-second", "x-remaining-this-second", "x-limit-per-day", "x-remaining-today")


def me(sb: Sandbox, token: str) -> requests.Response:
    return requests.get(f"{sb.url}/v3/application/users/me", timeout=5,
                        headers={"x-api-key": sb.api_key, "Authorization": f"Bearer {token}"})


def ping(sb: Sandbox, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).get(f"{sb.url}/v3/application/openapi-ping", timeout=5,
                                     headers={"x-api-key": sb.api_key})


def test_per_second_limit_headers_and_429() -> None:
    with Sandbox(auto_approve=True, clock=Clock(frozen=True)) as sb:
        token = login(sb).access_token
        remaining = []
        for _ in range(10):
            r = me(sb, token)
            assert r.status_code == 200
            assert r.headers["x-limit-per-second"] == "10" and r.headers["x-limit-per-day"] == "10000"
            remaining.append(int(r.headers["x-remaining-this-second"]))
        assert remaining == list(range(9, -1, -1))
        assert r.headers["x-remaining-today"] == "9990"
        over = me(sb, token)
        assert over.status_code == 429 and over.json() == {"error": "Exceeded per second rate limit"}
        assert not any(h in over.headers for h in LIMIT_HEADERS)
        sb.advance(1.0)
        assert me(sb, token).status_code == 200


def test_daily_limit_is_rolling_with_retry_after() -> None:
    with Sandbox(auto_approve=True, clock=Clock(frozen=True), rate_per_second=100, rate_per_day=5,
                 token_ttl=200_000) as sb:
        token = login(sb).access_token
        for _ in range(3):
            assert me(sb, token).status_code == 200
        sb.advance(3600)
        for _ in range(2):
            assert me(sb, token).status_code == 200
        over = me(sb, token)
        assert over.status_code == 429 and over.json() == {"error": "Exceeded daily rate limit"}
        assert int(over.headers["retry-after"]) == 86_400 - 3600
        sb.advance(86_400 - 3600)  # the first three fall out of the window
        r = me(sb, token)
        assert r.status_code == 200 and r.headers["x-remaining-today"] == "2"


def test_budgets_are_per_token_holder() -> None:
    with Sandbox(auto_approve=True, clock=Clock(frozen=True), rate_per_second=3) as sb:
        token = login(sb).access_token
        for _ in range(3):
            me(sb, token)
        assert me(sb, token).status_code == 429
        assert ping(sb).status_code == 200  # an app-key-only call has its own budget
        refreshed = requests.post(f"{sb.url}/v3/public/oauth/token", headers={"x-api-key": sb.api_key},
                                  data={"grant_type": "refresh_token", "client_id": sb.keystring,
                                        "refresh_token": login(sb).refresh_token}, timeout=5).json()
        # A refreshed token is the same holder: rotation must not reset the budget.
        assert me(sb, refreshed["access_token"]).status_code == 429


def test_status_fault_for_next_n_calls(sandbox: Sandbox) -> None:
    sandbox.inject_fault(status=503, count=2)
    codes = [ping(sandbox).status_code for _ in range(4)]
    assert codes == [503, 503, 200, 200]
    assert [r.status for r in sandbox.requests] == codes


def test_fault_only_on_matching_paths(sandbox: Sandbox, api) -> None:
    sandbox.inject_fault(status=500, paths=["/v3/application/shops/*/receipts"])
    assert api("GET", "/v3/application/shops/{shop_id}/receipts").status_code == 500
    assert api("GET", "/v3/application/shops/{shop_id}/receipts").json() == {"error": "Internal Server Error"}
    assert api("GET", "/v3/application/users/me").status_code == 200
    sandbox.clear_faults()
    assert api("GET", "/v3/application/shops/{shop_id}/receipts").status_code == 200


def test_share_of_calls_fails(sandbox: Sandbox) -> None:
    sandbox.inject_fault(status=500, share=0.3)
    with requests.Session() as s:
        codes = [ping(sandbox, s).status_code for _ in range(100)]
    failures = codes.count(500)
    assert 10 <= failures <= 50 and set(codes) == {200, 500}


def test_latency_fault(sandbox: Sandbox) -> None:
    sandbox.inject_fault(latency=0.3, count=1)
    t0 = time.perf_counter()
    assert ping(sandbox).status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    ping(sandbox)
    assert time.perf_counter() - t0 < 0.3


def test_drop_closes_the_connection_without_a_response(sandbox: Sandbox) -> None:
    sandbox.inject_fault(drop=True, count=1)
    with pytest.raises(requests.ConnectionError):
        ping(sandbox)
    assert ping(sandbox).status_code == 200
    assert [r.status for r in sandbox.requests] == [0, 200]


def test_429_fault_uses_etsy_body(sandbox: Sandbox) -> None:
    sandbox.inject_fault(status=429, count=1)
    r = ping(sandbox)
    assert r.status_code == 429 and r.json() == {"error": "Exceeded per second rate limit"}


def test_bad_fault_arguments_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.inject_fault()
    with pytest.raises(ValueError):
        sandbox.inject_fault(status=500, share=1.5)
    with pytest.raises(ValueError):
        sandbox.inject_fault(status=500, count=0)
