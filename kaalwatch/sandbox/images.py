"""Small deterministic images the sandbox serves as listing photos and buyer uploads (Pillow, in memory)."""

from __future__ import annotations

import hashlib
import io
import threading

from PIL import Image, ImageDraw

_cache: dict[tuple[str, int, int, str], bytes] = {}
_lock = threading.Lock()


def render(key: str, width: int = 320, height: int = 240, fmt: str = "JPEG") -> bytes:
    """Return encoded image bytes derived only from ``key`` (same key, same bytes, every run).

    Images are generated on first request and cached, so starting the sandbox costs nothing.
    """
    cache_key = (key, width, height, fmt)
    with _lock:
        hit = _cache.get(cache_key)
    if hit is not None:
        return hit
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    background = (digest[0], digest[1], digest[2])
    accent = (255 - digest[0], 255 - digest[1], 255 - digest[2])
    img = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(img)
    # A few shapes make the picture non-trivial to compress and distinct per key (thumbnails differ).
    for i in range(4):
        x0 = digest[3 + i] * width // 256
        y0 = digest[7 + i] * height // 256
        size = 10 + digest[11 + i] * min(width, height) // 512
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=accent)
    draw.rectangle((0, height - 12, width - 1, height - 1), fill=accent)
    out = io.BytesIO()
    img.save(out, format=fmt, quality=80) if fmt == "JPEG" else img.save(out, format=fmt)
    data = out.getvalue()
    with _lock:
        _cache[cache_key] = data
    return data


CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}
