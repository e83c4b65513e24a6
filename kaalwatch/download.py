"""Safe downloads of buyer uploads and listing images: nothing a buyer typed can reach inside the network.

Buyer upload URLs are hostile input, so each fetch

* accepts only ``http``/``https`` URLs without credentials; resolves the host **once**, refuses it if any
  address is private, loopback, link-local, reserved or multicast, and connects to one of exactly those
  vetted addresses (the ``Host`` header, TLS server name and certificate check still use the name), so a
  rebinding resolver answering differently the second time never gets a second time. Redirects are
  followed by hand, at most five, each vetted the same way. The one exception is the configured Etsy base
  URL's own host and port when it is local: the sandbox serves its files there;
* caps the size (``Content-Length`` and the bytes actually read) and bounds the time with an **absolute
  deadline** per download: socket timeouts shrink to the time left, and a timer cuts the connection when
  the deadline passes, whatever the read is doing (a server trickling one byte a second, or a header line
  that never ends, is cut at the deadline, not after the next 64 KiB);
* demands an image content type (or a generic binary one) *and* image magic bytes; the pixel count is
  checked from the header before anything decodes it (bombs);
* writes to a temporary name in the target folder and renames it into place only when all checks
  passed, so a half-downloaded file is never seen.

Every refusal or failure is a :class:`~kaalwatch.errors.DownloadError` with a one-line reason that names
no buyer data; :mod:`kaalwatch.download_queue` records it on the order and retries later.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi

from kaalwatch import naming
from kaalwatch.atomic import atomic_open
from kaalwatch.errors import DownloadError
from kaalwatch.settings import Settings

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Magic-byte formats we keep, with the suffix the saved file gets (whatever the URL said).
IMAGE_SUFFIXES = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "heif": ".heic", "gif": ".gif", "tiff": ".tif",
                  "bmp": ".bmp"}
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

Resolver = Callable[..., list[Any]]


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of one download; ``local_hosts`` are loopback (host, port) pairs allowed anyway (the sandbox).

    ``deadline`` is the absolute time one download may take, from resolving the name to the last byte.
    """

    max_bytes: int
    deadline: float
    max_pixels: int
    local_hosts: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadPolicy:
        from kaalwatch.loopback import is_loopback_url

        local: set[tuple[str, int]] = set()
        base = settings.etsy.base_url
        if is_loopback_url(base):
            parts = urlsplit(base)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            # The sandbox may be named either way; only its own port is let through.
            local = {(name, port) for name in ("localhost", "127.0.0.1", "::1", (parts.hostname or "").lower())}
        return cls(max_bytes=int(settings.sync.download_max_mb * 1024 * 1024),
                   deadline=settings.sync.download_timeout_seconds,
                   max_pixels=int(settings.preview.max_megapixels * 1_000_000), local_hosts=frozenset(local))


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size: int
    kind: str  # jpeg, png, …


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


@dataclass(frozen=True)
class Target:
    """A vetted URL: where to connect (addresses resolved once) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def check_url(url: str, policy: DownloadPolicy, resolve: Resolver = socket.getaddrinfo) -> Target:
    """Refuse what must not be fetched; resolves the host once (no connection is made) and returns the
    addresses a connection may use."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DownloadError("refused a malformed URL") from None
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"refused a {parts.scheme or 'schemeless'} URL (only http and https are fetched)")
    if parts.username or parts.password:
        raise DownloadError("refused a URL with credentials in it")
    host = (parts.hostname or "").lower()
    if not host:
        raise DownloadError("refused a URL without a host")
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (UnicodeError, OSError):  # socket.gaierror is an OSError
        infos = []
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise DownloadError(f"cannot resolve the host {naming.clean_text(host, 80)}")
    if (host, port) not in policy.local_hosts:
        for address in addresses:
            if not _is_public(address):
                raise DownloadError(f"refused {naming.clean_text(host, 80)}: it points at a private, loopback or "
                                    "link-local address (buyer links must not reach inside your network)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, addresses=addresses)


class _Connection(http.client.HTTPConnection):
    """http.client pinned to one vetted address: connects there, while ``Host``, SNI and the certificate
    check use the name."""

    def __init__(self, target: Target, address: str, timeout: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.tls = tls
        self.default_port = 443 if target.scheme == "https" else 80  # "Host: name", without a default port
        self.target = target
        self.address = address

    def connect(self) -> None:
        # Assigned before the TLS handshake, so the deadline timer can cut a handshake that trickles too.
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        if self.target.scheme == "https":
            tls = self.tls or ssl.create_default_context(cafile=certifi.where())
            self.sock = tls.wrap_socket(self.sock, server_hostname=self.target.host)

    def cut(self) -> None:
        """Called by the deadline timer from another thread: any read in progress ends at once."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS


class _Clock:
    """The absolute deadline of one download; ``left()`` raises once it has passed."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds
        self.cut = False

    def left(self) -> float:
        remaining = self.at - self.clock()
        if remaining <= 0 or self.cut:
            raise DownloadError(f"the download took longer than {self.seconds:g} s")
        return remaining


def _check_pixels(path: Path, kind: str, max_pixels: int) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only: no pixels are decoded here
            width, height = im.size
    except Image.DecompressionBombError:
        raise DownloadError("refused an image with too many pixels (a decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        if kind == "heif":
            return  # Pillow needs a plugin for HEIC; the thumbnailer checks it with its own limits
        raise DownloadError(f"the file looks like {kind} but does not open as an image") from None
    if width * height > max_pixels:
        raise DownloadError(f"refused a {width}×{height} image (more than {max_pixels // 1_000_000} megapixels)")


def fetch(url: str, folder: Path, stem: str, taken: set[str], *, policy: DownloadPolicy,
          resolve: Resolver = socket.getaddrinfo, clock: Callable[[], float] = time.monotonic,
          max_bytes: int | None = None, tls: ssl.SSLContext | None = None) -> Downloaded:
    """Download ``url`` into ``folder`` as ``<stem><suffix of its real format>`` (made unique against
    ``taken``); every check of the module docstring applies; ``max_bytes`` lowers the size cap (an order's
    remaining budget). ``resolve`` and ``tls`` (default: the system's trust with certifi's roots) are the
    network's edges. Raises :class:`DownloadError`."""
    deadline = _Clock(policy.deadline, clock)
    limit = policy.max_bytes if max_bytes is None else min(policy.max_bytes, max_bytes)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = check_url(current, policy, resolve)
        conn, resp = _open(target, deadline, tls)
        timer = threading.Timer(max(0.0, deadline.at - clock()), _expire, (conn, deadline))
        timer.daemon = True
        timer.start()
        try:
            deadline.left()
            if resp.status in REDIRECTS:
                location = resp.getheader("location")
                if not location:
                    raise DownloadError(f"a redirect (HTTP {resp.status}) without a location")
                current = urljoin(current, location)
                continue
            if resp.status != 200:
                raise DownloadError(f"the server answered HTTP {resp.status}")
            return _save(resp, conn, folder, stem, taken, limit, policy.max_pixels, deadline)
        finally:
            timer.cancel()
            conn.close()
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


def _expire(conn: _Connection, deadline: _Clock) -> None:
    deadline.cut = True
    conn.cut()


def _open(target: Target, deadline: _Clock, tls: ssl.SSLContext | None) -> tuple[_Connection,
                                                                              http.client.HTTPResponse]:
    """Connect to the first vetted address that answers and send the request; the headers are read under
    a timer too (a server trickling its header lines is cut at the deadline)."""
    problem = "connection failed"
    for address in target.addresses:
        conn = _Connection(target, address, timeout=deadline.left(), tls=tls)
        timer = threading.Timer(deadline.left(), _expire, (conn, deadline))
        timer.daemon = True
        timer.start()
        try:
            conn.request("GET", target.path, headers={"Accept": "image/*", "Accept-Encoding": "identity",
                                                      "User-Agent": "kaalwatch"})
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            deadline.left()  # the deadline, not the symptom it caused, is the reason to give
            problem = "timed out" if isinstance(exc, TimeoutError) else f"failed ({exc.__class__.__name__})"
        finally:
            timer.cancel()
    raise DownloadError(f"the download {problem}")


def _save(resp: http.client.HTTPResponse, conn: _Connection, folder: Path, stem: str, taken: set[str],
          max_bytes: int, max_pixels: int, deadline: _Clock) -> Downloaded:
    from kaalwatch.imaging.decode import sniff

    ctype = (resp.getheader("content-type") or "").split(";")[0].strip().lower()
    if not ctype.startswith("image/") and ctype not in GENERIC_TYPES:
        raise DownloadError(f"not an image (content type {naming.clean_text(ctype, 60)})")
    length = resp.getheader("content-length") or ""
    if length.isdigit() and int(length) > max_bytes:
        raise DownloadError(f"too big ({int(length) // 1024 // 1024} MB; the limit is "
                            f"{max_bytes // 1024 // 1024} MB)")
    digest = hashlib.sha256()
    chunks = _chunks(resp, conn, length, max_bytes, deadline)
    head = b""
    for chunk in chunks:  # the first bytes say what the file is, and so its name, before anything is written
        head += chunk
        if len(head) >= 64:
            break
    kind = sniff(head[:64])
    if kind not in IMAGE_SUFFIXES:
        raise DownloadError(f"not an image (the bytes are {kind or 'of an unknown kind'})")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / reference_file_name(stem, IMAGE_SUFFIXES[kind], taken | set(os.listdir(folder)))
    size = 0
    with atomic_open(final, check=lambda tmp: _check_pixels(tmp, kind, max_pixels)) as out:
        for chunk in itertools.chain((head,), chunks):
            size += len(chunk)
            digest.update(chunk)
            out.write(chunk)
    return Downloaded(path=final, sha256=digest.hexdigest(), size=size, kind=kind)


def _chunks(resp: http.client.HTTPResponse, conn: _Connection, length: str, max_bytes: int,
            deadline: _Clock) -> Iterator[bytes]:
    """The body, one read at a time, within the deadline and ``max_bytes``; complete as announced."""
    size = 0
    while True:
        left = deadline.left()
        if conn.sock is not None:
            conn.sock.settimeout(left)
        try:
            chunk = resp.read1(CHUNK)  # returns what one read brings: the deadline is checked per read
        except (OSError, http.client.HTTPException, ValueError) as exc:
            deadline.left()
            raise DownloadError(f"the download broke off ({exc.__class__.__name__})") from None
        if not chunk:
            deadline.left()  # a connection cut by the timer also ends in b""
            break
        size += len(chunk)
        if size > max_bytes:
            raise DownloadError(f"too big (more than {max_bytes // 1024 // 1024} MB)")
        yield chunk
    if length.isdigit() and size < int(length):
        raise DownloadError("the download broke off (fewer bytes than announced)")


def reference_file_name(stem: str, suffix: str, taken: set[str]) -> str:
    """``<stem><suffix>``, or ``<stem> (2)<suffix>``… — safe, and not in ``taken`` (case-insensitively)."""
    base = naming.safe_component(stem, fallback="reference", max_bytes=80)
    stems = {name[: len(name) - len(suffix)] for name in taken if name.casefold().endswith(suffix.casefold())}
    return naming.unique_name(base, stems) + suffix
