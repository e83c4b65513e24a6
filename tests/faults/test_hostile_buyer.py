"""Hostile buyers end to end: what a buyer can type or link reaches Etsy's receipt, the sandbox serves it over
loopback, the real sync writes folders and manifests, and nothing escapes, evaluates or connects inside.

No packet may leave loopback: a guard on ``socket.connect`` records and refuses any other address, so a
broken SSRF check fails the test instead of reaching 10.0.0.1 or the cloud metadata address.
"""

from __future__ import annotations

import dataclasses
import http.server
import ipaddress
import re
import socket
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from kaalwatch.download import DownloadPolicy, fetch
from kaalwatch.download_queue import DownloadQueue
from kaalwatch.errors import DownloadError
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import connect
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import MANIFEST, Workspace
from kaalwatch.sync import sync_once

pytestmark = pytest.mark.slow

HOSTILE_TEXT = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "{receipt_id}{buyer}{0.__class__}",
    "${7*7} #{7*7} <%= 7*7 %>",
    "../../../../etc/passwd",
    "..\\..\\windows\\system32",
    "CON",
    "nul.txt",
    "a\x00b\x1b[31mred\x07",
    "\u202eexe.png\u202c Smith",
    "\u200f\u200e\u2066rtl\u2069",
    "x" * 10_000,
]


@pytest.fixture
def outside_attempts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse (and record) every connection this process tries to a non-loopback address."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        try:
            loopback = ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(address)
            raise ConnectionRefusedError(f"test guard: no connection to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback server that must never be asked anything (a "service inside the network")."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def inside_service() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def shop(settings: Settings, tmp_path: Path) -> Iterator[tuple[Sandbox, Settings, Workspace]]:
    sb = Sandbox(seed=3, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000)
    sb.start()
    values = {"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret,
              "scopes": ("transactions_r", "shops_r", "listings_r"), "redirect_port": 0, "rate_per_second": 1000.0,
              "timeout_seconds": 5.0}
    s = dataclasses.replace(settings, workspace=tmp_path / "ws", etsy=dataclasses.replace(settings.etsy, **values))
    ws = Workspace(s)
    ws.create()
    connect(s, ws, lambda url: requests.get(url, timeout=10), output=lambda line: None)
    yield sb, s, ws
    ws.close()
    sb.stop()


def test_buyer_links_inside_the_network_are_refused_before_any_connection_and_shown_on_the_order(
        shop: tuple[Sandbox, Settings, Workspace], inside_service: tuple[int, list[str]],
        outside_attempts: list[Any]) -> None:
    sb, s, ws = shop
    port, hits = inside_service
    urls = [
        f"http://127.0.0.1:{port}/private.jpg",  # loopback, but not the Etsy (sandbox) port
        f"http://localhost:{port}/private.jpg",
        f"http://[::1]:{port}/private.jpg",
        "http://10.0.0.1/photo.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/photo.jpg",
        "http://2130706433/photo.jpg",  # 127.0.0.1 written as one number
        "file:///etc/passwd",
        "http://user:pass@10.0.0.1/photo.jpg",
    ]
    receipt = sb.add_order(upload_urls=[", ".join(urls)])
    with EtsyClient.from_settings(s, ws) as client:
        report = sync_once(ws, s, client)
    assert report.fatal is None, report.summary()
    DownloadQueue(ws, s).run()
    order = ws.load(receipt["receipt_id"])
    buyer_refs = [r for r in order.references if r.source == "buyer"]
    # Every http(s) link is a reference that failed; a file: URL is not even taken for a link.
    assert sorted(r.url or "" for r in buyer_refs) == sorted(u for u in urls if u.startswith("http"))
    for ref in buyer_refs:
        assert ref.status == "failed", ref
        assert ref.error and ref.error.startswith("refused"), ref.error
    assert any((job.last_error or "").startswith("download: ") for job in order.jobs)  # shown on the order
    assert hits == [] and outside_attempts == []
    refs_dir = ws.folder_of(order.receipt_id)
    assert [p.name for p in refs_dir.rglob("*") if p.is_file() and p.name != MANIFEST
            and "references" in p.parts and "private" in p.name] == []


class _Redirector(http.server.BaseHTTPRequestHandler):
    """Stands in for an allowed host (the configured Etsy base) that redirects somewhere it must not."""

    target = ""
    asked: list[str]

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _resolver(table: dict[str, str]) -> Any:
    """Injected DNS: names map to the addresses given; anything else does not resolve."""

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            address = str(ipaddress.ip_address(host.strip("[]")))  # a literal resolves to itself
        except ValueError:
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "unknown") from None
            address = table[host]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@pytest.mark.parametrize("target", [
    "http://10.0.0.1/photo.jpg", "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/x.jpg",
    "http://127.0.0.1:9/x.jpg", "http://inside.example/x.jpg",
])
def test_a_redirect_or_a_dns_name_into_the_network_is_refused_before_connecting(
        tmp_path: Path, target: str, outside_attempts: list[Any]) -> None:
    asked: list[str] = []
    handler = type("Handler", (_Redirector,), {"target": target, "asked": asked})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    # Only the redirector is let through, as the local Etsy sandbox would be; the real Etsy has no exception.
    policy = DownloadPolicy(max_bytes=1 << 20, deadline=5, max_pixels=10_000_000,
                            local_hosts=frozenset({("127.0.0.1", port)}))
    resolve = _resolver({"inside.example": "10.0.0.1", "photos.example": "10.0.0.1"})
    try:
        with pytest.raises(DownloadError, match=r"^refused"):
            fetch(f"http://127.0.0.1:{port}/upload.jpg", tmp_path, "ref", set(), policy=policy, resolve=resolve)
        assert asked == ["/upload.jpg"]  # the redirect target was never asked
        # A buyer link that is itself a DNS name resolving inside is refused without any request.
        public = dataclasses.replace(policy, local_hosts=frozenset())
        with pytest.raises(DownloadError, match=r"^refused inside\.example: it points at a private"):
            fetch("http://inside.example/x.jpg", tmp_path, "ref", set(), policy=public, resolve=resolve)
        assert len(asked) == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert outside_attempts == []
    assert list(tmp_path.iterdir()) == []


def test_hostile_buyer_text_becomes_safe_folders_stays_literal_and_is_escaped_on_the_page(
        shop: tuple[Sandbox, Settings, Workspace], outside_attempts: list[Any]) -> None:
    from kaalwatch.watch.ingest import watermark_for
    from review_app import create_app, security

    sb, s, ws = shop
    placed: dict[int, str] = {}
    for text in HOSTILE_TEXT:
        placed[sb.add_order(buyer_name=text, message=text, gift_message=text, is_gift=True)["receipt_id"]] = text
    with EtsyClient.from_settings(s, ws) as client:
        report = sync_once(ws, s, client)
    assert report.fatal is None, report.summary()
    assert report.errors == []
    orders_root = ws.orders_dir.resolve()
    for rid, text in placed.items():
        folder = ws.folder_of(rid)
        name = folder.name
        assert folder.resolve().parent == orders_root  # one component right under orders/
        assert name.startswith(f"{rid} ") and name == name.strip() and not name.endswith(".")
        assert len(name.encode("utf-8")) <= 255
        assert not any(ch in name for ch in "/\\")  # ".." inside one component is harmless text
        assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in name), repr(name)
        assert "49" not in name[len(str(rid)):]  # no template was evaluated
        order = ws.load(rid)
        assert order.buyer_name == text and order.message_from_buyer == text  # kept literally, verbatim
        # The watermark carries the buyer's first word as text, never as a template.
        template = "{shop} #{receipt_id} for {buyer_first_name} v{version}"
        wm = dataclasses.replace(s, watermark=dataclasses.replace(s.watermark, template=template))
        _, mark, _ = watermark_for(wm, order, order.jobs[0], 1)
        assert mark.startswith(f"{s.shop_name} #{rid} for ") and mark.endswith(" v1")
        assert "49" not in mark.replace(str(rid), "") and "<class" not in mark
        if text.startswith("{receipt_id}"):
            assert "{receipt_id}" in mark
    assert [p.name for p in ws.root.iterdir() if p.name not in ("orders", ".kaalwatch")] == []

    # The review page shows all of it escaped, with its security headers.
    security.set_password(ws, "correct horse battery")
    app = create_app(s, ws, {"TESTING": True})
    with app.test_client() as page:
        token = _csrf(page.get("/login").get_data(as_text=True))
        assert page.post("/login", data={"password": "correct horse battery", "csrf_token": token}).status_code == 302
        bodies = [page.get("/")] + [page.get(f"/jobs/{rid}") for rid in placed]
        for response in bodies:
            if response.status_code == 302:
                response = page.get(response.headers["Location"])
            assert response.status_code == 200
            assert "Content-Security-Policy" in response.headers
            html = response.get_data(as_text=True)
            assert "<script>alert(1)" not in html and "<img src=x" not in html
        listing = bodies[0].get_data(as_text=True)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing or "&lt;script&gt;" in listing
        assert "{{7*7}}" in listing
    assert outside_attempts == []
    # Control and bidi characters reaching the page raw are the review page's open bug: see the test below.


CONTROL_TEXT = ["a\x00b\x1b[31mred\x07", "\u202eexe.png\u202c Smith", "\u200f\u200e\u2066rtl\u2069"]


def test_control_and_bidi_characters_in_buyer_text_never_reach_the_page_raw(
        shop: tuple[Sandbox, Settings, Workspace]) -> None:
    from review_app import create_app, security

    sb, s, ws = shop
    placed = [sb.add_order(buyer_name=text, message=text)["receipt_id"] for text in CONTROL_TEXT]
    with EtsyClient.from_settings(s, ws) as client:
        assert sync_once(ws, s, client).fatal is None
    security.set_password(ws, "correct horse battery")
    app = create_app(s, ws, {"TESTING": True})
    leaks: set[str] = set()
    with app.test_client() as page:
        token = _csrf(page.get("/login").get_data(as_text=True))
        assert page.post("/login", data={"password": "correct horse battery", "csrf_token": token}).status_code == 302
        for path in ["/", *(f"/jobs/{rid}" for rid in placed)]:
            response = page.get(path, follow_redirects=True)
            assert response.status_code == 200
            leaks.update(f"U+{ord(ch):04X}" for ch in response.get_data(as_text=True)
                         if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\r\t")
    assert sorted(leaks) == []


def _csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "no CSRF token on the login page"
    return match.group(1)
