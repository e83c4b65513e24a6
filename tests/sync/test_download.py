"""Safe downloads: the SSRF guard, caps, content checks, redirects — against real loopback servers."""

from __future__ import annotations

import dataclasses
import io
import socket
import ssl
import struct
import subprocess
import threading
import time
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


# ------------------------------------------------------------------------------- deadline and DNS pinning


class Trickler:
    """A raw loopback server that sends ``prefix`` at once, then one byte of ``drip`` a second, forever."""

    def __init__(self, prefix: bytes, drip: bytes) -> None:
        self.prefix, self.drip = prefix, drip
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(self.prefix)
                index = 0
                while not self.stop.wait(1.0):
                    if self.drip:
                        conn.sendall(self.drip[index % len(self.drip):][:1])
                    index += 1
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("prefix, drip", [
    # the body, one byte a second (the deadline used to be checked only between 64 KiB chunks)
    (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8\xff", b"x"),
    # a header line that never ends
    (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Slow: ", b"a"),
    # a chunk-size line that never ends
    (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n", b"0"),
    # nothing at all after the connection is accepted
    (b"", b""),
], ids=["body", "header", "chunk-size", "silent"])
def test_a_trickling_server_is_cut_at_the_deadline(settings: Settings, tmp_path: Path, prefix: bytes,
                                                   drip: bytes) -> None:
    server = Trickler(prefix, drip)
    policy = dataclasses.replace(policy_for(f"http://127.0.0.1:{server.port}", settings), deadline=2.0)
    try:
        started = time.monotonic()
        with pytest.raises(DownloadError, match="took longer than 2 s"):
            fetch(f"http://127.0.0.1:{server.port}/slow.jpg", tmp_path, "slow", set(), policy=policy)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert 1.5 <= elapsed <= 2.5, elapsed
    assert list(tmp_path.iterdir()) == []


class _Recording(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host", "")))
        body = jpeg()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Recording,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_rebinding_resolver_never_reaches_loopback(settings: Settings, tmp_path: Path,
                                                     recorder: tuple[int, list[tuple[str, str]]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """First answer public (it passes the check), every later answer 127.0.0.1: there is no later answer."""
    port, seen = recorder
    asked: list[str] = []

    def rebinding(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        address = "93.184.216.34" if len(asked) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    connected: list[object] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        connected.append(address)
        if isinstance(address, tuple) and address[0] != "127.0.0.1":
            raise ConnectionRefusedError("test: no traffic leaves this machine")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)
    policy = policy_for("https://api.etsy.com", settings)
    with pytest.raises(DownloadError, match=r"^the download failed \(ConnectionRefusedError\)"):
        fetch(f"http://rebind.example:{port}/x.jpg", tmp_path, "x", set(), policy=policy, resolve=rebinding)
    assert asked == ["rebind.example"]  # resolved once
    assert connected == [("93.184.216.34", port)]  # and connected only to the vetted address
    assert seen == []  # the loopback server was never reached


def test_the_connection_goes_to_the_vetted_address_with_the_original_host_header(
        settings: Settings, tmp_path: Path, recorder: tuple[int, list[tuple[str, str]]]) -> None:
    port, seen = recorder
    asked: list[str] = []

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    # The name is let through as a local Etsy would be; what matters is where and how it connects.
    policy = dataclasses.replace(policy_for("https://api.etsy.com", settings),
                                 local_hosts=frozenset({("photos.example", port)}))
    got = fetch(f"http://photos.example:{port}/p.jpg?size=full", tmp_path, "p", set(), policy=policy,
                resolve=resolve)
    assert got.size == len(jpeg()) and asked == ["photos.example"]
    assert seen == [("/p.jpg?size=full", f"photos.example:{port}")]


def test_an_order_budget_lowers_the_size_cap(settings: Settings, files: Files, tmp_path: Path) -> None:
    files.routes["/big"] = (200, "image/jpeg", jpeg(), {})
    with pytest.raises(DownloadError, match="too big"):
        fetch(f"{files.url}/big", tmp_path, "big", set(), policy=local(files, settings), max_bytes=100)


def _certificates(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``name`` signed by it (the system's openssl)."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=kaalwatch test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", f"/CN={name}")
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{name}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.mark.parametrize("certified", ["photos.example", "other.example"])
def test_https_connects_to_the_vetted_address_and_checks_the_certificate_against_the_name(
        settings: Settings, tmp_path: Path, certified: str) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = _certificates(certs, certified)
    seen: list[tuple[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Recording,), {"seen": seen}))
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    trust = ssl.create_default_context(cafile=str(ca))
    policy = dataclasses.replace(policy_for("https://api.etsy.com", settings),
                                 local_hosts=frozenset({("photos.example", port)}))

    def resolve(host: str, port: int, *args: object, **kwargs: object) -> list[object]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    url = f"https://photos.example:{port}/p.jpg"
    try:
        if certified == "photos.example":
            got = fetch(url, tmp_path / "out", "p", set(), policy=policy, resolve=resolve, tls=trust)
            assert got.size == len(jpeg()) and seen == [("/p.jpg", f"photos.example:{port}")]
        else:  # a certificate for another name is refused, though the address was the vetted one
            with pytest.raises(DownloadError, match="SSLCertVerificationError"):
                fetch(url, tmp_path / "out", "p", set(), policy=policy, resolve=resolve, tls=trust)
            assert seen == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
