"""Each security rule of the review page, one test (or a parametrized family) per rule."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kaalwatch.errors import ConfigError
from kaalwatch.model import Answer, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app, security, sessions
from review_app.runtime import runtime
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, add_reference, csrf, jpeg, login, post

SCRIPT = "<script>alert(1)</script>"
HEADERS = {
    "Content-Security-Policy": None,  # checked separately: pages and files have their own policy
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def with_review(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, review=dataclasses.replace(settings.review, **changes))


def assert_secure_headers(response) -> None:  # type: ignore[no-untyped-def]
    for name, value in HEADERS.items():
        assert name in response.headers, name
        if value:
            assert response.headers[name] == value
    if response.mimetype == "text/html":
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Security-Policy"] == security.CSP


# ---------------------------------------------------------------------------------------------- sessions


def action_paths(order: Order) -> list[str]:
    base = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"
    return [f"{base}/{name}" for name in ("proof", "answer", "approve", "hold", "reopen", "note", "rescan")]


def test_no_session_redirects_to_login(anon: FlaskClient, order: Order) -> None:
    job = order.jobs[0]
    for path in ("/", "/?state=new", f"/jobs/{order.receipt_id}", f"/jobs/{order.receipt_id}/{job.job_id}",
                 f"/files/{order.receipt_id}/{job.job_id}/v/1/preview", f"/files/{order.receipt_id}/ref/0"):
        response = anon.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path


def test_post_without_session_changes_nothing(anon: FlaskClient, ws: Workspace, order: Order) -> None:
    before = ws.load(order.receipt_id)
    token = csrf(anon)  # even with a valid CSRF token: no login, no change
    for path in action_paths(order):
        response = anon.post(path, data={"version": "1", "answer": "approved", "text": "x", "csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    assert ws.load(order.receipt_id) == before


def test_login_sets_strict_httponly_cookie_and_returns_to_next(anon: FlaskClient, order: Order) -> None:
    target = f"/jobs/{order.receipt_id}"
    response = anon.post("/login", data={"password": PASSWORD, "csrf_token": csrf(anon), "next": target})
    assert response.status_code == 302 and response.headers["Location"] == target
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert anon.get("/").status_code == 200


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(anon: FlaskClient, target: str) -> None:
    response = anon.post("/login", data={"password": PASSWORD, "csrf_token": csrf(anon), "next": target})
    assert response.headers["Location"] == "/"


def test_wrong_password(anon: FlaskClient) -> None:
    response = anon.post("/login", data={"password": "nope nope", "csrf_token": csrf(anon)})
    assert response.status_code == 401 and "Wrong password." in response.get_data(as_text=True)
    assert anon.get("/").status_code == 302


def test_login_attempts_are_throttled_per_account_whatever_the_address(app: Flask) -> None:
    now = [1000.0]
    with app.app_context():
        runtime().throttle = sessions.LoginThrottle(runtime().throttle.db, clock=lambda: now[0])
    attacker = app.test_client()
    owner = app.test_client()
    codes = [attacker.post("/login", data={"password": "guess", "csrf_token": csrf(attacker)},
                           environ_base={"REMOTE_ADDR": f"10.0.0.{n}"}).status_code for n in range(6)]
    assert codes == [401] * 5 + [429]
    # Even the right password from another address waits while locked, and is told until when.
    locked = owner.post("/login", data={"password": PASSWORD, "csrf_token": csrf(owner)})
    text = locked.get_data(as_text=True)
    assert locked.status_code == 429 and "locked until" in text and "set-password" in text
    assert "locked until" in owner.get("/login").get_data(as_text=True)
    now[0] += 31
    login(owner)


def test_throttle_backs_off_exponentially_and_refused_guesses_do_not_extend_it(ws: Workspace) -> None:
    now = [0.0]
    throttle = sessions.LoginThrottle(sessions.Database(ws.secrets), free=2, base_seconds=10,
                                      max_seconds=35, clock=lambda: now[0])
    assert throttle.admit() == 0 and throttle.wait_seconds() == 0
    assert throttle.admit() == 0 and throttle.wait_seconds() == 10
    assert throttle.admit() == 10  # refused, not counted
    now[0] += 10
    assert throttle.admit() == 0 and throttle.wait_seconds() == 20
    now[0] += 20
    assert throttle.admit() == 0 and throttle.wait_seconds() == 35
    throttle.success()
    assert throttle.wait_seconds() == 0


def test_set_password_lifts_the_login_lock(app: Flask, ws: Workspace) -> None:
    with app.app_context():
        throttle = runtime().throttle
    for _ in range(5):
        throttle.admit()
    assert throttle.wait_seconds() > 0
    security.set_password(ws, "another long password")
    assert throttle.wait_seconds() == 0


def test_new_password_ends_old_sessions(client: FlaskClient, ws: Workspace) -> None:
    assert client.get("/").status_code == 200
    security.set_password(ws, "another long password")
    assert client.get("/").status_code == 302


def test_logout(client: FlaskClient) -> None:
    response = post(client, "/logout")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_password_is_argon2_and_private(ws: Workspace) -> None:
    security.set_password(ws, "a fine password")
    path = ws.secrets.password_path
    assert path.read_text().startswith("$argon2id$")
    assert path.stat().st_mode & 0o777 == 0o600
    assert security.verify_password(ws, "a fine password") and not security.verify_password(ws, "a fine passworD")
    with pytest.raises(ConfigError):
        security.set_password(ws, "short")


def test_sessions_live_server_side_in_a_private_file(client: FlaskClient, ws: Workspace) -> None:
    cookie = client.get_cookie("kaalwatch_session")
    assert cookie is not None and len(cookie.value) < 64  # a random id, no data
    path = ws.secrets.sessions_path
    assert path.stat().st_mode & 0o777 == 0o600
    assert cookie.value.encode() not in path.read_bytes()  # only its hash is stored


# ------------------------------------------------------------------------------------------- waiving


def test_password_waived_only_on_loopback_when_configured(settings: Settings, ws: Workspace) -> None:
    app = create_app(with_review(settings, require_password=False), ws)
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert "Log out" not in client.get("/").get_data(as_text=True)
    # CSRF still applies without a password.
    assert client.post("/logout").status_code == 400


def test_non_loopback_without_password_refuses_to_start(settings: Settings, ws: Workspace) -> None:
    with pytest.raises(ConfigError, match="not loopback"):
        create_app(with_review(settings, host="192.0.2.10", require_password=False), ws)


def test_non_loopback_needs_login_even_if_waived(settings: Settings, ws: Workspace) -> None:
    security.set_password(ws, PASSWORD)
    app = create_app(with_review(settings, host="192.0.2.10", require_password=False), ws)
    assert app.test_client().get("/").status_code == 302


def test_server_refuses_public_address_without_password(settings: Settings, ws: Workspace) -> None:
    app = create_app(with_review(settings, require_password=False), ws)
    with pytest.raises(ConfigError, match="without a password"):
        ReviewServer(app, "0.0.0.0", 0)


# -------------------------------------------------------------------------------------------- CSRF


def test_missing_or_wrong_csrf_is_400(client: FlaskClient, ws: Workspace, order: Order) -> None:
    before = ws.load(order.receipt_id)
    for path in [*action_paths(order), "/logout"]:
        assert client.post(path, data={"version": "1", "text": "x"}).status_code == 400, path
        assert client.post(path, data={"version": "1", "text": "x", "csrf_token": "x" * 43}).status_code == 400
    assert ws.load(order.receipt_id) == before


def test_login_needs_csrf_too(anon: FlaskClient) -> None:
    assert anon.post("/login", data={"password": PASSWORD}).status_code == 400


def test_csrf_token_of_another_session_is_refused(app: Flask, client: FlaskClient, order: Order) -> None:
    other = app.test_client()
    login(other)
    token = csrf(other, "/")
    path = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/approve"
    assert client.post(path, data={"version": "1", "csrf_token": token}).status_code == 400


def test_csrf_token_in_header_is_accepted(client: FlaskClient, ws: Workspace, order: Order) -> None:
    path = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/note"
    response = client.post(path, data={"text": "hi"}, headers={"X-CSRF-Token": csrf(client, "/")})
    assert response.status_code == 303 and ws.load(order.receipt_id).notes[0].text == "hi"


def test_foreign_origin_is_refused(client: FlaskClient, order: Order) -> None:
    path = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/note"
    token = csrf(client, "/")
    bad = client.post(path, data={"text": "x", "csrf_token": token}, headers={"Origin": "http://evil.example"})
    assert bad.status_code == 400
    good = client.post(path, data={"text": "x", "csrf_token": token}, headers={"Origin": "http://localhost"})
    assert good.status_code == 303


# -------------------------------------------------------------------------------------------- Host


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8470", "localhost:9999", "127.0.0.1.evil.example",
                                  "localhost:abc", "[::1]:1", "", "127.0.0.2"])
def test_foreign_host_is_400(client: FlaskClient, host: str) -> None:
    response = client.get("/", headers={"Host": host})
    assert response.status_code == 400
    assert_secure_headers(response)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1:8470", "[::1]:8470", "LOCALHOST:8470"])
def test_loopback_hosts_are_allowed(anon: FlaskClient, host: str) -> None:
    assert anon.get("/login", headers={"Host": host}).status_code == 200


def test_configured_hosts_are_allowed(settings: Settings, ws: Workspace) -> None:
    security.set_password(ws, PASSWORD)
    app = create_app(with_review(settings, allowed_hosts=("studio.lan", "kaal.local:9000")), ws)
    client = app.test_client()
    assert client.get("/login", headers={"Host": "studio.lan:8470"}).status_code == 200
    assert client.get("/login", headers={"Host": "kaal.local:9000"}).status_code == 200
    assert client.get("/login", headers={"Host": "kaal.local:9001"}).status_code == 400
    assert client.get("/login", headers={"Host": "other.lan"}).status_code == 400


def test_login_page_checks_host_too(anon: FlaskClient) -> None:
    assert anon.get("/login", headers={"Host": "evil.example"}).status_code == 400


# --------------------------------------------------------------------------------------- headers


def test_headers_on_every_kind_of_response(client: FlaskClient, anon: FlaskClient, order: Order) -> None:
    job = order.jobs[0]
    responses = [
        client.get("/"), client.get(f"/jobs/{order.receipt_id}/{job.job_id}"), client.get("/nothing"),
        client.post("/logout"), anon.get("/"), anon.get("/login"),
        client.get("/static/style.css"), client.get(f"/files/{order.receipt_id}/{job.job_id}/v/1/preview"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 404, 400, 302, 200, 200, 200]
    for response in responses:
        assert_secure_headers(response)
    image = responses[-1]
    assert image.headers["Content-Security-Policy"] == security.FILE_CSP
    assert "private" in image.headers["Cache-Control"]


# ---------------------------------------------------------------------------------------- escaping


def test_buyer_text_is_escaped_everywhere(client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    made = make_order(buyer=SCRIPT, titles=[f"Portrait {SCRIPT}"],
                      answers=[Answer(question=f"Name {SCRIPT}", answer=SCRIPT, files=[f"javascript:{SCRIPT}"])])
    made.message_from_buyer = SCRIPT
    made.is_gift = True
    made.gift_message = SCRIPT
    ws.add_order(made)
    add_reference(ws, made.receipt_id, "p.jpg", jpeg(), label=SCRIPT)
    from kaalwatch import lifecycle

    with ws.edit(made.receipt_id) as o:
        lifecycle.add_note(o, SCRIPT, made.jobs[0].job_id)
        lifecycle.hold(o, made.jobs[0].job_id, SCRIPT)
    pages = [client.get(f"/jobs/{made.receipt_id}/{made.jobs[0].job_id}").get_data(as_text=True),
             client.get("/?state=all").get_data(as_text=True),
             client.get("/", query_string={"q": SCRIPT}).get_data(as_text=True)]
    for html in pages:
        assert "<script>alert" not in html
    assert pages[0].count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6
    assert not re.search(r'href="javascript:', pages[0])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]


def test_cross_site_fetch_metadata_is_refused(client: FlaskClient, order: Order) -> None:
    path = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/note"
    token = csrf(client, "/")
    bad = client.post(path, data={"text": "x", "csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"})
    assert bad.status_code == 400
    # Under Referrer-Policy: no-referrer a browser's same-origin form sends "Origin: null" — accepted with the token.
    good = client.post(path, data={"text": "x", "csrf_token": token},
                       headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"})
    assert good.status_code == 303


def test_control_and_bidi_characters_are_made_visible(client: FlaskClient, ws: Workspace,
                                                      make_order: Callable[..., Order]) -> None:
    import unicodedata

    tricky = "\u202egpj.exe\u202c Smith\x00\x1b[31m"
    made = make_order(buyer=tricky, answers=[Answer(question="Name", answer=f"line one\nline two {tricky}")])
    made.message_from_buyer = tricky
    ws.add_order(made)
    pages = [client.get("/").get_data(as_text=True),
             client.get(f"/jobs/{made.receipt_id}/{made.jobs[0].job_id}").get_data(as_text=True)]
    for html in pages:
        raw = {f"U+{ord(ch):04X}" for ch in html if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\r\t"}
        assert raw == set()
        assert "[U+202E]gpj.exe[U+202C] Smith[U+0000][U+001B][31m" in html
    assert "line one\nline two" in pages[1]  # newlines in answers stay


def test_oversized_post_is_413_and_changes_nothing(client: FlaskClient, ws: Workspace, order: Order) -> None:
    before = ws.load(order.receipt_id)
    path = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}/note"
    response = client.post(path, data={"text": "x" * 400_000, "csrf_token": csrf(client, "/")})
    assert response.status_code == 413
    assert_secure_headers(response)
    assert ws.load(order.receipt_id) == before
