"""Small deterministic images the sandbox serves as listing photos and buyer uploads (Pillow, in memory)."""

from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageDraw


@functools.cache
def render(key: str, width: int = 320, height: int = 240) -> bytes:
    """Return JPEG bytes derived only from ``key`` (same key, same bytes, every run).

    Images are generated on first request and cached, so starting the sandbox costs nothing.
    """
    img = _pet_photo(hashlib.sha256(key.encode("utf-8")).digest(), width, height)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=80)
    return out.getvalue()


# Fur and backdrop colours of believable pet photos (a newcomer's demo should look like a shop's day).
_FUR = [(92, 64, 44), (196, 154, 108), (40, 36, 34), (226, 214, 196), (150, 96, 52), (120, 120, 126)]
_BACKDROP = [((214, 226, 206), (160, 180, 150)), ((232, 218, 200), (190, 160, 130)),
             ((206, 218, 232), (150, 170, 196)), ((238, 232, 214), (200, 190, 160))]


def _pet_photo(digest: bytes, width: int, height: int) -> Image.Image:
    """A soft backdrop (a sofa, a lawn…) with a sitting pet, its size, colour and pose from ``digest``."""
    top, bottom = _BACKDROP[digest[0] % len(_BACKDROP)]
    img = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(img)
    for y in range(height):  # a vertical gradient, like light falling on a wall and a floor
        t = y / max(1, height - 1)
        draw.line((0, y, width, y), fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    fur = _FUR[digest[1] % len(_FUR)]
    dark = tuple(max(0, c - 45) for c in fur)
    light = tuple(min(255, c + 50) for c in fur)
    unit = min(width, height) / 240
    cx = width * (0.35 + digest[2] / 255 * 0.3)
    base = height * 0.97
    body_w, body_h = (52 + digest[3] % 22) * unit, (92 + digest[4] % 24) * unit
    draw.ellipse((cx - body_w, base - body_h, cx + body_w, base), fill=fur)
    draw.ellipse((cx - body_w * 0.45, base - body_h * 0.85, cx + body_w * 0.45, base - body_h * 0.15), fill=light)
    head = (34 + digest[5] % 10) * unit
    hy = base - body_h - head * 0.35
    pointy = digest[6] % 2 == 0  # a cat's pointed ears or a dog's floppy ones
    for side in (-1, 1):
        if pointy:
            ex = cx + side * head * 0.55
            draw.polygon([(ex - side * 14 * unit, hy - head * 0.6), (ex + side * 8 * unit, hy - head * 1.45),
                          (ex + side * 16 * unit, hy - head * 0.35)], fill=dark)
        else:
            ex = cx + side * head * 0.95
            draw.ellipse((ex - 12 * unit, hy - head * 0.7, ex + 12 * unit, hy + head * 0.6), fill=dark)
    draw.ellipse((cx - head, hy - head, cx + head, hy + head), fill=fur)
    draw.ellipse((cx - head * 0.45, hy + head * 0.05, cx + head * 0.45, hy + head * 0.75), fill=light)
    for side in (-1, 1):
        draw.ellipse((cx + side * head * 0.4 - 4 * unit, hy - head * 0.25 - 4 * unit,
                      cx + side * head * 0.4 + 4 * unit, hy - head * 0.25 + 4 * unit), fill=(24, 20, 18))
    draw.ellipse((cx - 6 * unit, hy + head * 0.15, cx + 6 * unit, hy + head * 0.15 + 7 * unit), fill=(50, 34, 30))
    return img

