"""Safe downloads: the SSRF guard, caps, content checks, redirects — against real loopback servers."""

from __future__ import annotations

import dataclasses
import io
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch.download import DownloadPolicy, check_url, fetch
from kaalwatch.errors import DownloadError
from kaalwatch.settings import Settings


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "#7a9b76").save(out, "JPEG")
    return out.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (a decompression bomb) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class Files(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, tuple[int, str, bytes, dict[str, str]]]) -> None:
        self.routes = routes
        self.hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                status, ctype, body, headers = server.routes.get(self.path, (404, "text/plain", b"no", {}))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = self
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files({})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def policy_for(base_url: str, settings: Settings) -> DownloadPolicy:
    return DownloadPolicy.from_settings(dataclasses.replace(
        settings, etsy=dataclasses.replace(settings.etsy, base_url=base_url)))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/private.jpg", "http://10.0.0.1/photo.jpg", "http://169.254.169.254/latest/meta-data/",
    "http://localhost:8080/x.jpg", "http://[::1]/x.jpg", "http://192.168.1.1/x.jpg", "http://[::ffff:10.0.0.1]/x",
])
def test_private_addresses_are_refused_when_etsy_is_not_local(settings: Settings, url: str) -> None:
    with pytest.raises(DownloadError, match="private, loopback or link-local"):
        check_url(url, policy_for("https://api.etsy.com", settings))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.jpg", "http://user:pw@example.com/x.jpg",
                                 "gopher://127.0.0.1:25/"])
def test_odd_urls_are_refused(settings: Settings, url: str) -> None:
    with pytest.raises(DownloadError, match="refused"):
        check_url(url, policy_for("https://api.etsy.com", settings))


def test_a_buyer_url_never_reaches_another_loopback_service(settings: Settings, files: Files, tmp_path: Path) -> None:
    files.routes["/private.jpg"] = (200, "image/jpeg", jpeg(), {})
    for base in ("https://api.etsy.com", "http://127.0.0.1:1"):  # real Etsy, or a sandbox on another port
        with pytest.raises(DownloadError, match="private"):
            fetch(f"{files.url}/private.jpg", tmp_path, "p", set(), policy=policy_for(base, settings))
    assert files.hits == [] and list(tmp_path.iterdir()) == []


def local(files: Files, settings: Settings, **over: object) -> DownloadPolicy:
    return dataclasses.replace(policy_for(files.url, settings), **over)


def test_the_local_etsy_itself_is_allowed_and_the_real_format_names_the_file(
        settings: Settings, files: Files, tmp_path: Path) -> None:
    files.routes["/a.png"] = (200, "image/png", jpeg(), {})  # says PNG, is JPEG
    got = fetch(f"{files.url}/a.png", tmp_path, "photo", {"photo.jpg"}, policy=local(files, settings))
    assert got.path.name == "photo (2).jpg" and got.kind == "jpeg" and got.path.read_bytes() == jpeg()


@pytest.mark.parametrize("route, message", [
    ((200, "text/html", b"<html>hi</html>", {}), "not an image"),
    ((200, "application/octet-stream", b"<!doctype html><script>", {}), "not an image"),
    ((200, "image/png", png_header_claiming(60_000, 60_000), {}), "pixels"),
    ((200, "image/jpeg", jpeg() + b"\0" * 3_000_000, {}), "too big"),
    ((404, "text/plain", b"gone", {}), "HTTP 404"),
    ((302, "text/plain", b"", {"Location": "http://10.0.0.1/x.jpg"}), "private"),
])
def test_content_is_checked(settings: Settings, files: Files, tmp_path: Path, route: tuple,
                            message: str) -> None:
    files.routes["/f"] = route
    policy = local(files, settings, max_bytes=2_000_000)
    with pytest.raises(DownloadError, match=message):
        fetch(f"{files.url}/f", tmp_path, "f", set(), policy=policy)
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written stays behind


def test_redirects_are_followed_and_rechecked(settings: Settings, files: Files, tmp_path: Path) -> None:
    files.routes["/r"] = (302, "text/plain", b"", {"Location": "/img"})
    files.routes["/img"] = (200, "image/jpeg", jpeg(), {})
    got = fetch(f"{files.url}/r", tmp_path, "r", set(), policy=local(files, settings))
    assert got.size == len(jpeg()) and files.hits == ["/r", "/img"]
