"""Fixtures for the review page: an app on a real workspace, logged-in clients, orders with real previews."""

from __future__ import annotations

import functools
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image, ImageDraw

from kaalwatch import lifecycle
from kaalwatch.model import Order, Reference, Version, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import REFERENCES, Workspace
from review_app import create_app, security

PASSWORD = "correct horse battery"
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def jpeg(size: tuple[int, int] = (320, 240), colour: tuple[int, int, int] = (200, 120, 60), mark: int = 0) -> bytes:
    """A small real JPEG; ``mark`` moves a white box so versions differ visibly."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    x = 20 + (mark * 37) % max(1, size[0] - 80)
    draw.rectangle((x, 40, x + 60, 100), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def add_versions(ws: Workspace, receipt_id: int, job_id: str, count: int, *, previews: bool = True) -> None:
    """Record ``count`` saves as the watcher would: an immutable copy plus a preview and thumbnail."""
    with ws.edit(receipt_id) as order:
        job = order.job(job_id)
        start = len(job.versions) + 1
        for number in range(start, start + count):
            colour = (40 + number * 7 % 200, 90, 160)
            data = jpeg(mark=number, colour=colour)
            digest = hashlib.sha256(data + str(number).encode()).hexdigest()
            copy = ws.version_copy_path(receipt_id, job_id, number, digest, ".jpg")
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
            version = Version(number=number, source_name=f"portrait v{number}.jpg", sha256=digest, size=len(data),
                              saved_at=utcnow() - timedelta(minutes=count - number), copy=ws.relative_to_tool(copy))
            lifecycle.add_version(order, job_id, version, actor="watcher")
            if previews:
                preview, thumb = ws.preview_paths(receipt_id, job_id, number, digest[:12])
                preview.parent.mkdir(parents=True, exist_ok=True)
                preview.write_bytes(data)
                thumb.write_bytes(jpeg((96, 96), colour, mark=number))
                lifecycle.update_version(order, job_id, number, actor="watcher", preview=ws.relative_to_tool(preview),
                                         thumb=ws.relative_to_tool(thumb), width=320, height=240, kind="jpeg")


def add_reference(ws: Workspace, receipt_id: int, name: str, data: bytes, **fields: object) -> int:
    """Drop a file into the order's references/ and record it; returns its index in the manifest."""
    folder = ws.folder_of(receipt_id)
    (folder / REFERENCES / name).write_bytes(data)
    with ws.edit(receipt_id) as order:
        order.references.append(Reference(name=name, source="buyer", size=len(data), **fields))  # type: ignore[arg-type]
        return len(order.references) - 1


def csrf(client: FlaskClient, path: str = "/login") -> str:
    """The session's CSRF token, read the way a browser gets it: from a page."""
    page = client.get(path).get_data(as_text=True)
    match = _META.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, password: str = PASSWORD) -> None:
    response = client.post("/login", data={"password": password, "csrf_token": csrf(client)})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@functools.cache
def _password_hash() -> str:
    return security._hasher.hash(PASSWORD)


def store_password(ws: Workspace) -> None:
    """What ``security.set_password`` writes, hashed once per run (argon2 is slow on purpose)."""
    ws.secrets_dir.mkdir(parents=True, exist_ok=True)
    path = ws.secrets.password_path
    path.write_text(_password_hash() + "\n")
    path.chmod(0o600)


@pytest.fixture
def app(settings: Settings, ws: Workspace) -> Flask:
    store_password(ws)
    return create_app(settings, ws, {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    """A logged-in client."""
    with app.test_client() as logged_in:
        login(logged_in)
        yield logged_in


@pytest.fixture
def anon(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def order(ws: Workspace, make_order: Callable[..., Order]) -> Order:
    """One order (one job) with three versions that have previews."""
    made = make_order(buyer="Grace Hopper", titles=["Pet portrait of Biscuit"])
    ws.add_order(made)
    add_versions(ws, made.receipt_id, made.jobs[0].job_id, 3)
    return ws.load(made.receipt_id)


def post(client: FlaskClient, path: str, data: dict[str, str] | None = None, *, page: str | None = None):  # type: ignore[no-untyped-def]
    """POST with the session's CSRF token (and the job's ``seen`` fingerprint when ``page`` is given)."""
    form = dict(data or {})
    source = client.get(page or "/").get_data(as_text=True)
    match = _META.search(source)
    assert match
    form.setdefault("csrf_token", match.group(1))
    if page:
        seen = re.search(r'name="seen" value="([^"]+)"', source)
        if seen:
            form.setdefault("seen", seen.group(1))
    return client.post(path, data=form)
