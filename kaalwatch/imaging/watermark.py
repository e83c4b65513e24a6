"""Build the proof watermark: safe text from a template, a tiled diagonal mask cached per size, burned in.

Safety: the template is expanded by one regular-expression pass that replaces ``{key}`` for known keys
only; the substituted values are never scanned again, so buyer text such as ``{{7*7}}`` or
``{receipt_id.__class__}`` stays literal. Nothing is ever passed to ``str.format``/``eval``. Field values
lose control and bidi-override characters (Unicode categories C*), get their whitespace collapsed and are
capped in length.

Speed: the text is rasterised once per (output size, spec, text) into a colour layer (fill colour with
the outline ring's colour) and one mask (coverage x opacity), rotated and cropped; ``lru_cache`` keeps
them. Burning in is then a single ``Image.paste(layer, mask=...)`` on the small preview image, a C blend
that needs no RGBA conversion of the artwork.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFont

from kaalwatch.errors import ConfigError

#: The font shipped with the package, so a proof looks the same on every machine.
SHIPPED_FONT = Path(__file__).resolve().parent.parent / "fonts" / "DejaVuSans.ttf"

DEFAULT_TEMPLATE = "PROOF — not for print · {shop} · #{receipt_id}"
#: The only keys a template may use; anything else in braces is printed literally.
KNOWN_KEYS = frozenset({"shop", "receipt_id", "buyer_first_name", "version", "order_id", "date"})
#: Longest value a single field may contribute (buyer names can be arbitrarily long).
MAX_FIELD_CHARS = 40
#: Longest whole watermark line.
MAX_TEXT_CHARS = 160

_KEY_RE = re.compile(r"\{([A-Za-z_]+)\}")


def clean_field(value: object, limit: int = MAX_FIELD_CHARS) -> str:
    """Make one untrusted value printable: no control/format/bidi characters, one line, capped."""
    text = unicodedata.normalize("NFC", str(value))
    # Category C* = control (Cc), format incl. RTL/LTR overrides and zero-width (Cf), surrogates,
    # private use, unassigned. Whitespace controls become spaces so "Ann\nMarie" stays two words.
    kept = [" " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C"]
    text = " ".join("".join(kept).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def watermark_text(template: str, fields_: Mapping[str, object]) -> str:
    """Expand ``{key}`` for known keys from ``fields_``; everything else stays literally as written.

    A known key missing from ``fields_`` expands to nothing (and the doubled separators it leaves are
    tidied), so a proof without a buyer name does not say ``{buyer_first_name}``.
    """

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in KNOWN_KEYS:
            return match.group(0)
        value = fields_.get(key)
        return "" if value is None else clean_field(value)

    text = _KEY_RE.sub(substitute, clean_field(template, limit=10 * MAX_TEXT_CHARS))
    text = re.sub(r"(\s*·\s*){2,}", " · ", text).strip(" ·#")
    return clean_field(text, limit=MAX_TEXT_CHARS)


@dataclass(frozen=True)
class WatermarkSpec:
    """How the proof watermark looks. All fields are part of the preview cache key."""

    template: str = DEFAULT_TEMPLATE
    opacity: float = 0.22  # 0..1, of the fill colour over the artwork
    angle: float = 30.0  # degrees, counter-clockwise
    size: float = 0.045  # font size as a fraction of the output's long edge
    color: str = "#ffffff"
    font_path: str | None = None  # None: the shipped DejaVu Sans
    outline: bool = True  # a thin ring in a contrasting colour, so white text shows on white paper
    outline_color: str | None = None  # None: black or white, whichever contrasts with ``color``
    line_spacing: float = 2.6  # distance between text rows, in font sizes
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ConfigError(f"watermark opacity must be between 0 and 1, not {self.opacity}")
        if not 0.005 <= self.size <= 0.5:
            raise ConfigError(f"watermark size must be 0.005..0.5 of the long edge, not {self.size}")
        if self.line_spacing < 1.0:
            raise ConfigError(f"watermark line_spacing must be at least 1, not {self.line_spacing}")
        for name in ("color", "outline_color"):
            value = getattr(self, name)
            if value is not None:
                try:
                    ImageColor.getrgb(value)
                except ValueError as exc:
                    raise ConfigError(f"watermark {name} {value!r} is not a colour") from exc
        if self.font_path is not None and not Path(self.font_path).is_file():
            raise ConfigError(f"watermark font {self.font_path} does not exist")

    def font_file(self) -> Path:
        return Path(self.font_path) if self.font_path else SHIPPED_FONT

    def fingerprint(self) -> str:
        """A stable text of every field plus the font file's identity (a changed font re-renders)."""
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)]
        font = self.font_file()
        try:
            st = font.stat()
            parts.append(f"font={font.name}:{st.st_size}")
        except OSError:
            parts.append(f"font={font}:missing")
        return ";".join(parts)


def _rgb(colour: str) -> tuple[int, int, int]:
    r, g, b = ImageColor.getrgb(colour)[:3]
    return r, g, b


def _contrast(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luma >= 128 else (255, 255, 255)


@functools.lru_cache(maxsize=8)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    # BASIC layout everywhere: raqm is not installed on every machine and would change the rendering.
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _stamp(canvas: Image.Image, strip: Image.Image, shift: int, top: int) -> None:
    """Combine the strip, read from x = ``shift``, into ``canvas`` at row ``top`` (keeping the brighter pixel,
    so rows closer than the strip's height do not erase each other)."""
    y0, y1 = max(0, top), min(canvas.height, top + strip.height)
    if y0 >= y1:
        return
    piece = strip.crop((shift, y0 - top, shift + canvas.width, y1 - top))
    region = (0, y0, canvas.width, y1)
    canvas.paste(ImageChops.lighter(canvas.crop(region), piece), region)


def _rotated_crop(canvas: Image.Image, angle: float, box: tuple[int, int, int, int]) -> Image.Image:
    """``canvas.rotate(angle).crop(box)``, computing only the pixels of ``box``.

    Rotating the whole square and then cropping costs about 2.4 times as many pixels as the preview
    holds; one affine transform straight to the box's size does the same with the same mapping.
    """
    a = -math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = canvas.width / 2, canvas.height / 2
    x0, y0 = box[0], box[1]
    # Output pixel (x, y) is the rotated canvas's (x + x0, y + y0); map that back into the canvas.
    matrix = (cos, sin, cos * (x0 - cx) + sin * (y0 - cy) + cx,
              -sin, cos, -sin * (x0 - cx) + cos * (y0 - cy) + cy)
    size = (box[2] - box[0], box[3] - box[1])
    return canvas.transform(size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BICUBIC)


@functools.lru_cache(maxsize=16)
def watermark_masks(size: tuple[int, int], spec: WatermarkSpec, text: str) -> tuple[
        Image.Image, Image.Image | None]:
    """The raw (fill, outline-ring) coverage masks for an image of ``size``, mode L, 0..255.

    Cached per (size, spec, text): text rasterisation and rotation are paid once per output size.
    """
    w, h = size
    font_px = max(6, round(spec.size * max(w, h)))
    font = _font(str(spec.font_file()), font_px)
    # Draw horizontal rows on a square that covers the image at any rotation, then rotate and crop
    # the middle: rows become continuous diagonal lines, so every crop of the image carries text.
    side = math.ceil(math.hypot(w, h)) + 2 * font_px
    unit = (text or "PROOF") + "     "
    unit_w = max(1.0, font.getlength(unit))
    pitch = max(font_px + 2, round(spec.line_spacing * font_px))
    stroke = max(1, round(font_px / 14)) if spec.outline else 0
    # Every row is the same periodic line, shifted: rasterise it once into a strip and stamp crops of it,
    # instead of asking FreeType for every row (that cost ~0.3 s per new text at 1600 px, and the text
    # differs per order, so the cache rarely helps a burst of new orders).
    strip_h = 2 * font_px + 2 * stroke
    strip_w = side + math.ceil(unit_w) + 2 * stroke + 2
    line = unit * (math.ceil(strip_w / unit_w) + 1)
    fill_strip = Image.new("L", (strip_w, strip_h), 0)
    ImageDraw.Draw(fill_strip).text((stroke, stroke), line, font=font, fill=255)
    ring_strip = None
    if stroke:
        ring_strip = Image.new("L", (strip_w, strip_h), 0)
        ImageDraw.Draw(ring_strip).text((stroke, stroke), line, font=font, fill=255, stroke_width=stroke,
                                         stroke_fill=255)
    fill_canvas = Image.new("L", (side, side), 0)
    ring_canvas = Image.new("L", (side, side), 0) if ring_strip is not None else None
    for row, top in enumerate(range(-pitch, side + pitch, pitch)):
        # Stagger rows by a fraction of the text width so words do not line up in columns.
        shift = round(((row * 0.38) % 1.0) * unit_w)
        _stamp(fill_canvas, fill_strip, shift, top - stroke)
        if ring_canvas is not None and ring_strip is not None:
            _stamp(ring_canvas, ring_strip, shift, top - stroke)
    box = ((side - w) // 2, (side - h) // 2, (side - w) // 2 + w, (side - h) // 2 + h)

    def finish(canvas: Image.Image) -> Image.Image:
        return _rotated_crop(canvas, spec.angle, box)

    ring = finish(ImageChops.subtract(ring_canvas, fill_canvas)) if ring_canvas is not None else None
    return finish(fill_canvas), ring


@functools.lru_cache(maxsize=16)
def watermark_layer(size: tuple[int, int], spec: WatermarkSpec, text: str, mode: str) -> tuple[
        Image.Image, Image.Image]:
    """(colour layer, mask) to burn in with one masked paste; the opacity is folded into the mask.

    Fill and ring are (nearly) disjoint, so one layer can hold both colours: the fill colour
    everywhere, the ring colour pasted through the ring's coverage, and a mask of their summed
    coverage times the opacity. One paste of an image through a mask is also about twice as fast in
    Pillow as one paste of a solid colour, and this replaces two of those.
    """
    fill, ring = watermark_masks(size, spec, text)
    colour = _rgb(spec.color)
    layer = Image.new("RGB", size, colour)
    coverage = fill
    if ring is not None:
        ring_colour = _rgb(spec.outline_color) if spec.outline_color else _contrast(colour)
        layer.paste(ring_colour, (0, 0), ring)
        coverage = ImageChops.add(fill, ring)
    mask = coverage.point([round(v * spec.opacity) for v in range(256)])
    return (layer if mode == "RGB" else layer.convert(mode)), mask


def apply_watermark(im: Image.Image, spec: WatermarkSpec, text: str) -> Image.Image:
    """Burn the watermark into ``im`` (RGB or L) in place and return it."""
    if not spec.enabled or spec.opacity == 0 or not text:
        return im
    layer, mask = watermark_layer(im.size, spec, text, im.mode)
    im.paste(layer, (0, 0), mask)
    return im
