"""Safe downloads of buyer uploads and listing images: nothing a buyer typed can reach inside the network.

Buyer upload URLs come from buyer-controlled answers, so each fetch

* accepts only ``http``/``https`` URLs without credentials, and refuses any host that resolves to a
  private, loopback, link-local, reserved or multicast address (checked again on the connected socket,
  and on every redirect, which is followed by hand, at most five times). The one exception is the
  configured Etsy base URL's own host and port when it is local: the sandbox serves its files there;
* caps the size (``Content-Length`` and the bytes actually read), bounds the time (connect and read
  timeouts plus an overall deadline), and demands an image content type (or a generic binary one) *and*
  image magic bytes; the pixel count is checked from the header before anything decodes it (bombs);
* writes to a temporary name in the target folder and renames it into place only when all checks
  passed, so a half-downloaded file is never seen.

Every refusal or failure is a :class:`~kaalwatch.errors.DownloadError` with a one-line reason that names
no buyer data; the caller records it on the order and retries on a later sync.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from kaalwatch import naming
from kaalwatch.atomic import TEMP_MARK
from kaalwatch.errors import DownloadError
from kaalwatch.settings import Settings

CHUNK = 64 * 1024
MAX_REDIRECTS = 5
# Magic-byte formats we keep, with the suffix the saved file gets (whatever the URL said).
IMAGE_SUFFIXES = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "heif": ".heic", "gif": ".gif", "tiff": ".tif",
                  "bmp": ".bmp"}
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

Resolver = Callable[..., list[Any]]


@dataclass(frozen=True)
class DownloadPolicy:
    """Limits of one download; ``local_hosts`` are loopback (host, port) pairs allowed anyway (the sandbox)."""

    max_bytes: int
    timeout: float
    max_pixels: int
    local_hosts: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadPolicy:
        from kaalwatch.etsy.client import is_local_url

        local: set[tuple[str, int]] = set()
        base = settings.etsy.base_url
        if is_local_url(base):
            parts = urlsplit(base)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            # The sandbox may be named either way; only its own port is let through.
            local = {(name, port) for name in ("localhost", "127.0.0.1", "::1", (parts.hostname or "").lower())}
        return cls(max_bytes=int(settings.sync.download_max_mb * 1024 * 1024),
                   timeout=settings.sync.download_timeout_seconds,
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


def check_url(url: str, policy: DownloadPolicy, resolve: Resolver = socket.getaddrinfo) -> None:
    """Refuse what must not be fetched; resolves the host (no connection is made)."""
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
    if (host, port) in policy.local_hosts:
        return
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise DownloadError(f"cannot resolve the host {naming.clean_text(host, 80)}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses:
        raise DownloadError(f"cannot resolve the host {naming.clean_text(host, 80)}")
    for address in addresses:
        if not _is_public(address):
            raise DownloadError(f"refused {naming.clean_text(host, 80)}: it points at a private, loopback or "
                                "link-local address (buyer links must not reach inside your network)")


def _peer_ok(resp: requests.Response, url: str, policy: DownloadPolicy) -> None:
    # DNS can answer differently the second time (rebinding): check where the socket really went.
    conn = getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    try:
        address = sock.getpeername()[0]
    except OSError:
        return
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if ((parts.hostname or "").lower(), port) in policy.local_hosts:
        return
    if not _is_public(address):
        raise DownloadError("refused: the host resolved to a private address when connecting")


def _sniff(head: bytes) -> str | None:
    from kaalwatch.imaging.decode import sniff

    return sniff(head)


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
          session: requests.Session, resolve: Resolver = socket.getaddrinfo,
          clock: Callable[[], float] = time.monotonic) -> Downloaded:
    """Download ``url`` into ``folder`` as ``<stem><suffix of its real format>`` (made unique against
    ``taken``); every check of the module docstring applies. Raises :class:`DownloadError`."""
    deadline = clock() + policy.timeout * 2
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url(current, policy, resolve)
        try:
            resp = session.get(current, stream=True, allow_redirects=False, timeout=policy.timeout,
                               headers={"Accept": "image/*"})
        except requests.Timeout:
            raise DownloadError("the download timed out") from None
        except requests.RequestException as exc:
            raise DownloadError(f"the download failed ({exc.__class__.__name__})") from None
        with contextlib.closing(resp):
            _peer_ok(resp, current, policy)
            if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                if not location:
                    raise DownloadError(f"a redirect (HTTP {resp.status_code}) without a location")
                current = urljoin(current, location)
                continue
            if resp.status_code != 200:
                raise DownloadError(f"the server answered HTTP {resp.status_code}")
            return _save(resp, folder, stem, taken, policy, deadline, clock)
    raise DownloadError(f"more than {MAX_REDIRECTS} redirects")


def _save(resp: requests.Response, folder: Path, stem: str, taken: set[str], policy: DownloadPolicy,
          deadline: float, clock: Callable[[], float]) -> Downloaded:
    ctype = (resp.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not ctype.startswith("image/") and ctype not in GENERIC_TYPES:
        raise DownloadError(f"not an image (content type {naming.clean_text(ctype, 60)})")
    length = resp.headers.get("content-length")
    if length and length.isdigit() and int(length) > policy.max_bytes:
        raise DownloadError(f"too big ({int(length) // 1024 // 1024} MB; the limit is "
                            f"{policy.max_bytes // 1024 // 1024} MB)")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".download{TEMP_MARK}{secrets.token_hex(6)}"
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with open(tmp, "wb") as out:
            try:
                for chunk in resp.iter_content(CHUNK):
                    if not chunk:
                        continue
                    if len(head) < 64:
                        head += chunk[: 64 - len(head)]
                    size += len(chunk)
                    if size > policy.max_bytes:
                        raise DownloadError(f"too big (more than {policy.max_bytes // 1024 // 1024} MB)")
                    if clock() > deadline:
                        raise DownloadError("the download took too long")
                    digest.update(chunk)
                    out.write(chunk)
            except requests.RequestException as exc:
                raise DownloadError(f"the download broke off ({exc.__class__.__name__})") from None
            out.flush()
            os.fsync(out.fileno())
        kind = _sniff(head)
        if kind not in IMAGE_SUFFIXES:
            raise DownloadError(f"not an image (the bytes are {kind or 'of an unknown kind'})")
        _check_pixels(tmp, kind, policy.max_pixels)
        name = unique_file_name(stem, IMAGE_SUFFIXES[kind], taken | set(os.listdir(folder)))
        final = folder / name
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return Downloaded(path=final, sha256=digest.hexdigest(), size=size, kind=kind)


def unique_file_name(stem: str, suffix: str, taken: set[str]) -> str:
    """``<stem><suffix>``, or ``<stem> (2)<suffix>``… — safe, and not in ``taken`` (case-insensitively)."""
    base = naming.safe_component(stem, fallback="reference", max_bytes=80)
    lowered = {t.casefold() for t in taken}
    name, n = base + suffix, 2
    while name.casefold() in lowered or name.startswith("."):
        name, n = f"{base} ({n}){suffix}", n + 1
    return name
