"""Issue 17's session and login attacks, replayed against the real page served by waitress on loopback."""

from __future__ import annotations

import dataclasses
import http.client
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask

from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app, security, sessions
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, store_password

_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def server(settings: Settings, ws: Workspace, order: Order) -> Iterator[ReviewServer]:
    store_password(ws)
    review = dataclasses.replace(settings.review, login_attempts=5, login_lock_seconds=60)
    app = create_app(dataclasses.replace(settings, review=review), ws)
    with ReviewServer(app, "127.0.0.1", 0, threads=8) as running:
        yield running


def _token(http: requests.Session, base: str) -> str:
    match = _META.search(http.get(f"{base}/login").text)
    assert match
    return match.group(1)


def _logged_in(base: str) -> requests.Session:
    http = requests.Session()
    response = http.post(f"{base}/login", data={"password": PASSWORD, "csrf_token": _token(http, base)},
                         allow_redirects=False)
    assert response.status_code == 302
    return http


def test_a_cookie_replayed_after_logout_is_refused(server: ReviewServer, order: Order) -> None:
    base = server.url.rstrip("/")
    browser = _logged_in(base)
    stolen = browser.cookies.get("kaalwatch_session")
    job = order.jobs[0].job_id
    page = browser.get(f"{base}/jobs/{order.receipt_id}/{job}", allow_redirects=False)
    assert page.status_code == 200
    csrf = _META.search(page.text)
    assert csrf
    assert browser.post(f"{base}/logout", data={"csrf_token": csrf.group(1)}, allow_redirects=False).status_code == 302
    thief = requests.Session()
    thief.cookies.set("kaalwatch_session", stolen)
    for path in ("/", f"/jobs/{order.receipt_id}/{job}"):
        response = thief.get(f"{base}{path}", allow_redirects=False)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    # Nor can it change an order with the CSRF token it saw before the logout.
    response = thief.post(f"{base}/jobs/{order.receipt_id}/{job}/hold", data={"csrf_token": csrf.group(1)},
                          allow_redirects=False)
    assert response.status_code in (302, 400)
    assert "/login" in response.headers.get("Location", "/login")


def test_set_password_ends_every_session_at_once(server: ReviewServer, ws: Workspace) -> None:
    base = server.url.rstrip("/")
    browser = _logged_in(base)
    assert browser.get(f"{base}/", allow_redirects=False).status_code == 200
    security.set_password(ws, "a brand new password")
    assert browser.get(f"{base}/", allow_redirects=False).status_code == 302


def test_an_idle_session_ends(app: Flask, ws: Workspace) -> None:
    now = [5000.0]
    limits = sessions.SessionLimits(idle_seconds=600, max_age_seconds=12 * 3600)
    app.session_interface = sessions.ServerSessionInterface(
        sessions.SessionStore(sessions.Database(ws.secrets), limits, clock=lambda: now[0]))
    client = app.test_client()
    response = client.post("/login", data={"password": PASSWORD, "csrf_token": _META.search(
        client.get("/login").get_data(as_text=True)).group(1)})  # type: ignore[union-attr]
    assert response.status_code == 302
    now[0] += 590
    assert client.get("/").status_code == 200  # used within the idle time: still valid, and touched
    now[0] += 590
    assert client.get("/").status_code == 200
    now[0] += 601
    assert client.get("/").status_code == 302
    now[0] = 5000.0  # the row is gone, not merely judged old: turning the clock back does not revive it
    assert client.get("/").status_code == 302


def _guess(port: int, source: str, token: str, cookie: str, password: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/login", body=urlencode({"password": password, "csrf_token": token}),
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Cookie": f"kaalwatch_session={cookie}"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_hundred_guesses_from_fifty_addresses_lock_the_account_after_the_configured_count(
        server: ReviewServer) -> None:
    base = server.url.rstrip("/")
    attacker = requests.Session()
    token = _token(attacker, base)
    cookie = attacker.cookies["kaalwatch_session"]
    codes = [_guess(server.port, f"127.0.{1 + n // 50}.{1 + n % 50}", token, cookie, f"guess {n}")
             for n in range(100)]
    assert codes.count(401) == 5 and codes.count(429) == 95
    # The right password from a fresh address is refused too while the lock lasts, with when it ends.
    owner = requests.Session()
    response = owner.post(f"{base}/login", data={"password": PASSWORD, "csrf_token": _token(owner, base)},
                          allow_redirects=False)
    assert response.status_code == 429 and "locked until" in response.text


def test_parallel_guesses_never_get_more_than_the_allowed_count_checked(server: ReviewServer) -> None:
    base = server.url.rstrip("/")
    attacker = requests.Session()
    token = _token(attacker, base)
    cookie = attacker.cookies["kaalwatch_session"]
    start = threading.Barrier(24)

    def guess(n: int) -> int:
        start.wait()
        return _guess(server.port, "127.0.0.1", token, cookie, f"parallel {n}")

    with ThreadPoolExecutor(24) as pool:
        codes = list(pool.map(guess, range(24)))
    assert codes.count(401) == 5 and codes.count(429) == 19
