"""Hypothesis drives every route with every parameter, hostile or not, with and without session and token.

For each request: never a 500; every response carries the security headers; an image served is one of the
workspace's previews, thumbnails or references (nothing else, nothing outside); no secret ever appears in a
body; and the manifest changes only when the request had a session, a valid CSRF token and our Host.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from kaalwatch.model import Order
from kaalwatch.store import Workspace
from review_app import sessions
from review_app.runtime import runtime
from tests.review.conftest import PASSWORD, add_reference, add_versions, csrf, jpeg, login

HOSTILE = ["..", "../", "../../../etc/passwd", "/etc/passwd", "%2e%2e%2f", "..%2F..%2Fsecrets", "\\..\\x", "\x00",
           "<script>alert(1)</script>", "", " ", "-1", "0", "99999999999999999999", "é", "%00", "1/../2",
           "secrets/review_password", "order.yaml", "//evil.example", "javascript:alert(1)", "'; DROP TABLE jobs;--",
           "%", "_", "*", "\n", "a" * 300]
QUERY_KEYS = ["state", "q", "page", "a", "b", "download", "next"]
FORM_KEYS = ["version", "answer", "note", "text", "reason", "seen", "password", "next", "sure", "manual"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
EXAMPLES = int(os.environ.get("KAALWATCH_FUZZ_EXAMPLES", "200"))  # CI or a long local run may raise it


@dataclass
class Env:
    app: Flask
    ws: Workspace
    order: Order
    clients: dict[str, FlaskClient]
    rules: list[Rule]
    allowed_images: set[str]
    secrets: list[bytes]

    def manifests(self) -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in self.ws.orders_dir.rglob("order.yaml")}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(app: Flask, ws: Workspace, order: Order, make_order: Callable[..., Order],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    second = make_order(jobs=2, titles=["Mum", "Dad"])
    ws.add_order(second)
    add_versions(ws, second.receipt_id, second.jobs[1].job_id, 2)
    add_reference(ws, order.receipt_id, "photo.jpg", jpeg((200, 150)))
    # Tempting targets: an image in the private folders and one outside the workspace.
    (ws.secrets_dir / "bait.jpg").write_bytes(jpeg((10, 10), (1, 2, 3)))
    (ws.root.parent / "outside.jpg").write_bytes(jpeg((10, 10), (3, 2, 1)))
    stub = types.ModuleType("kaalwatch.watch")  # the rescan button's own work is tested elsewhere
    report = types.SimpleNamespace(summary=lambda: "nothing new")
    stub.rescan_order = lambda ws, settings, receipt_id, **kw: report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kaalwatch.watch", stub)
    with app.app_context():
        # the fuzz guesses passwords all day
        runtime().throttle = sessions.LoginThrottle(runtime().throttle.db, free=10**9)
    allowed = {_digest(p.read_bytes()) for p in ws.previews_dir.rglob("*") if p.is_file()}
    allowed |= {_digest(p.read_bytes()) for p in ws.orders_dir.rglob("references/*") if p.is_file()}
    logged_in = app.test_client()
    login(logged_in)
    rules = [r for r in app.url_map.iter_rules()]
    secrets = [ws.secrets.password_path.read_bytes().strip()]
    yield Env(app=app, ws=ws, order=ws.load(order.receipt_id), clients={"user": logged_in,
              "anon": app.test_client()}, rules=rules, allowed_images=allowed, secrets=secrets)


def _value(draw: Callable, name: str, converter: str, env: Env) -> str:  # type: ignore[type-arg]
    ids = env.ws.receipt_ids()
    jobs = [j.job_id for rid in ids for j in env.ws.load(rid).jobs]
    choices: list[st.SearchStrategy[str]] = [st.sampled_from(HOSTILE), st.text(max_size=12)]
    if converter == "IntegerConverter" or name in ("receipt_id", "number", "index"):
        choices += [st.sampled_from([str(i) for i in ids]), st.integers(0, 5).map(str)] * 3
    if name == "job_id":
        choices += [st.sampled_from(jobs)] * 4
    if name == "kind":
        choices += [st.sampled_from(["preview", "thumb", "copy"])] * 3
    if name == "filename":
        choices += [st.sampled_from(["style.css", "app.js", "../security.py"])] * 3
    raw = draw(st.one_of(*choices))
    # Raw keeps "/", "%" and ".." as a hand-made URL would; "?" and "#" always end a path, so they stay encoded.
    return quote(raw, safe="/%:@!$&'()*+,;=") if draw(st.booleans()) else quote(raw, safe="")


def _coherent(draw: Callable, env: Env) -> dict[str, str]:  # type: ignore[type-arg]
    """Parameters that name something that exists, so guarded actions would really act if let through."""
    rid = draw(st.sampled_from(env.ws.receipt_ids()))
    job = draw(st.sampled_from(env.ws.load(rid).jobs))
    return {"receipt_id": str(rid), "job_id": job.job_id, "number": draw(st.sampled_from(["1", "2", "3"])),
            "index": "0", "kind": draw(st.sampled_from(["preview", "thumb"])), "filename": "app.js"}


def _path(draw: Callable, rule: Rule, env: Env) -> str:  # type: ignore[type-arg]
    path = rule.rule
    real = _coherent(draw, env) if draw(st.booleans()) else {}
    for name, converter in rule._converters.items():
        value = real.get(name) or _value(draw, name, type(converter).__name__, env)
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", lambda m, v=value: v, path, count=1)
    return path


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_every_route_every_parameter(env: Env, data: st.DataObject) -> None:
    draw = data.draw
    rule = draw(st.sampled_from(env.rules))
    path = _path(draw, rule, env)
    own = [m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")]
    method = draw(st.sampled_from(own) if draw(st.integers(0, 9)) else st.sampled_from(METHODS))
    who = draw(st.sampled_from(["user", "user", "anon"]))
    client = env.clients[who]
    if who == "user":
        with client.session_transaction() as sess:
            still = bool(sess.get("user"))
        if not still:  # a fuzzed /logout ended the session earlier
            login(client)
    token_kind = draw(st.sampled_from(["valid", "valid", "missing", "wrong"]))
    host = draw(st.sampled_from(["localhost", "localhost", "localhost:8470", "evil.example", "localhost:1"]))
    query = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)),
                                 max_size=3))
    form = draw(st.dictionaries(st.sampled_from(FORM_KEYS),
                                st.one_of(st.sampled_from([*HOSTILE, "1", "2", "approved", "changes", "yes", PASSWORD]),
                                          st.text(max_size=8)), max_size=4))
    if draw(st.booleans()):  # a form an action accepts, so only the guards stand between it and a change
        form.update({"version": draw(st.sampled_from(["1", "2"])), "answer": "changes", "text": "a note",
                     "reason": "waiting"})
    if token_kind == "valid":
        form["csrf_token"] = csrf(client, "/" if who == "user" else "/login")
    elif token_kind == "wrong":
        form["csrf_token"] = "x" * 43
    before = env.manifests()
    response = client.open(path, method=method, query_string=query, data=form if method != "GET" else None,
                           headers={"Host": host})
    body = response.get_data()

    assert response.status_code < 500, (method, path, query, form, response.status_code)
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert header in response.headers, (header, method, path)
    for secret in env.secrets:
        assert secret not in body, (method, path)
    if response.status_code == 200 and response.mimetype.startswith("image/"):
        assert _digest(body) in env.allowed_images, (method, path)
    if host in ("evil.example", "localhost:1"):
        assert response.status_code == 400
    changed = env.manifests() != before
    if changed:
        assert who == "user" and token_kind == "valid" and method == "POST" and host not in ("evil.example",
                                                                                              "localhost:1"), (
            method, path, form)


GUARDS = st.fixed_dictionaries({
    "who": st.sampled_from(["user", "anon"]),
    "token": st.sampled_from(["valid", "missing", "wrong", "other session"]),
    "host": st.sampled_from(["localhost", "localhost:8470", "evil.example", "localhost:1", "127.0.0.1.evil.example"]),
    "site": st.sampled_from([None, "same-origin", "cross-site", "same-site"]),
})


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), guards=GUARDS)
def test_no_state_change_without_session_token_and_host(env: Env, data: st.DataObject,
                                                        guards: dict[str, str | None]) -> None:
    """Every action, aimed at a real job with a form it accepts: only the guards decide whether it acts."""
    draw = data.draw
    actions = [r for r in env.rules if "POST" in (r.methods or ()) and r.endpoint != "auth.login"]
    rule = draw(st.sampled_from(actions))
    real = _coherent(draw, env)
    path = rule.rule
    for name in rule._converters:
        path = re.sub(rf"<(?:[^:<>]+:)?{name}>", lambda m, v=real[name]: v, path, count=1)
    client = env.clients[str(guards["who"])]
    if guards["who"] == "user":
        with client.session_transaction() as sess:
            still = bool(sess.get("user"))
        if not still:
            login(client)
    form = {"version": draw(st.sampled_from(["1", "2"])), "answer": draw(st.sampled_from(["approved", "changes"])),
            "text": "a note", "reason": "waiting", "sure": "yes"}
    if guards["token"] == "valid":
        form["csrf_token"] = csrf(client, "/" if guards["who"] == "user" else "/login")
    elif guards["token"] == "wrong":
        form["csrf_token"] = "x" * 43
    elif guards["token"] == "other session":
        form["csrf_token"] = csrf(env.app.test_client(), "/login")
    headers = {"Host": str(guards["host"])}
    if guards["site"]:
        headers["Sec-Fetch-Site"] = str(guards["site"])
    before = env.manifests()
    response = client.post(path, data=form, headers=headers)
    assert response.status_code < 500, (path, form, guards)
    allowed = (guards["who"] == "user" and guards["token"] == "valid" and guards["host"] in ("localhost",
               "localhost:8470") and guards["site"] in (None, "same-origin"))
    if env.manifests() != before:
        assert allowed, (path, guards)
    if not allowed:
        assert response.status_code in (302, 400), (path, guards, response.status_code)
