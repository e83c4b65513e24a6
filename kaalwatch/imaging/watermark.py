"""Build the proof watermark: safe text from a template, a tiled diagonal mask cached per size, burned in.

Safety: the template is expanded by one regular-expression pass that replaces ``{key}`` for known keys
only; the substituted values are never scanned again, so buyer text such as ``{{7*7}}`` or
``{receipt_id.__class__}`` stays literal. Nothing is ever passed to ``str.format``/``eval``. Field values
lose control and bidi-override characters (Unicode categories C*), get their whitespace collapsed and are
capped in length.

Speed: each run of the text (a word, at most ``RUN_CHARS`` characters, or a single character of a word
with digits) is rasterised and rotated once per font size and angle and cached, and the runs without
digits are placed once per size and text width and kept. A new order's text, which differs from the last
one in its receipt id, then costs a copy of those placed words plus its digits placed from ten cached
stamps: about 2 ms for the coverage and 6 ms for the whole layer at 1600 px (measured 2026-11-29 on the
2-core bench machine, Pillow 13), where rotating whole rows cost 126 ms and per-run stamps 11 ms.
``preview`` also builds a new order's layer on a second thread while the artwork decodes. Burning in is
then a single ``Image.paste(layer, mask=...)`` on the small preview image, a C blend that needs no RGBA
conversion of the artwork.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageChops, ImageColor, ImageDraw, ImageFont

from kaalwatch.errors import ConfigError
from kaalwatch.naming import clean_text

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
        return "" if value is None else clean_text(value, MAX_FIELD_CHARS, ellipsis=True)

    text = _KEY_RE.sub(substitute, clean_text(template, 10 * MAX_TEXT_CHARS, ellipsis=True))
    text = re.sub(r"(\s*·\s*){2,}", " · ", text).strip(" ·#")
    return clean_text(text, MAX_TEXT_CHARS, ellipsis=True)


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


#: Longest run of characters rasterised and rotated as one piece. Words are runs; a longer word (or a
#: script written without spaces) is split, so no single rotation covers a long stretch of the image.
RUN_CHARS = 8


def _runs(unit: str, font: ImageFont.FreeTypeFont) -> list[tuple[str, float]]:
    """The visible runs of ``unit`` and the pen x of each one's first glyph (kerning included).

    A word with a digit in it (a receipt id, a date) is cut into single characters: every order has its
    own digits, and ten stamped digits serve them all, where a run of them would be rasterised and
    rotated anew for each order.
    """
    runs = []
    for match in re.finditer(r"\S+", unit):
        word = match.group()
        step = 1 if any(ch.isdigit() for ch in word) else RUN_CHARS
        for i in range(0, len(word), step):
            at = match.start() + i
            # Pen position of glyph ``at``: everything up to and including it, minus its own advance.
            runs.append((word[i:i + step], font.getlength(unit[:at + 1]) - font.getlength(unit[at])))
    return runs


@dataclass(frozen=True)
class _Stamp:
    """One run, rasterised (fill, and fill plus outline) and rotated; ``anchor`` is where the run's pen
    origin (left edge, ascender line) landed in the rotated images."""

    fill: Image.Image
    stroked: Image.Image | None
    anchor: tuple[float, float]


#: Runs kept per worker: the template's runs are used for every order and stay; a run is at most a
#: few hundred pixels square, so this is a few megabytes.
@functools.lru_cache(maxsize=128)
def _stamp(font_path: str, font_px: int, stroke: int, angle: float, run: str) -> _Stamp:
    """Rasterise ``run`` and rotate it by ``angle`` (counter-clockwise), once per font size and angle.

    Cached across orders: a new order's watermark shares every run of the template (PROOF, the shop
    name, ...) with the orders before it, so only the runs that hold its own fields are new.
    """
    font = _font(font_path, font_px)
    pad = stroke + 2
    left, top, right, bottom = font.getbbox(run, anchor="la", stroke_width=stroke)
    # Pillow types the box as floats; FreeType answers whole pixels, so ceil() only satisfies the types.
    width, height = math.ceil(right - left) + 2 * pad, math.ceil(bottom - top) + 2 * pad
    origin = (pad - left, pad - top)
    flat = Image.new("L", (width, height), 0)
    ImageDraw.Draw(flat).text(origin, run, font=font, fill=255, anchor="la")
    stroked_flat = None
    if stroke:
        stroked_flat = Image.new("L", (width, height), 0)
        ImageDraw.Draw(stroked_flat).text(origin, run, font=font, fill=255, anchor="la", stroke_width=stroke,
                                          stroke_fill=255)
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)

    def turn(x: float, y: float) -> tuple[float, float]:  # a vector from the origin, as the rotation moves it
        return cos * x + sin * y, -sin * x + cos * y

    corners = [turn(x - origin[0], y - origin[1]) for x in (0, width) for y in (0, height)]
    min_x, min_y = min(c[0] for c in corners) - 1, min(c[1] for c in corners) - 1
    size = (math.ceil(max(c[0] for c in corners) - min_x) + 1, math.ceil(max(c[1] for c in corners) - min_y) + 1)
    anchor = (-min_x, -min_y)
    # Output pixel p shows the flat image at origin + inverse rotation of (p - anchor).
    matrix = (cos, -sin, origin[0] - (cos * anchor[0] - sin * anchor[1]),
              sin, cos, origin[1] - (sin * anchor[0] + cos * anchor[1]))

    def rotate(im: Image.Image) -> Image.Image:
        return im.transform(size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BICUBIC)

    return _Stamp(rotate(flat), rotate(stroked_flat) if stroked_flat is not None else None, anchor)


def _place(canvas: Image.Image, stamp: Image.Image, x: int, y: int) -> None:
    """Add ``stamp``'s coverage to ``canvas`` at (x, y) (Pillow clips at the edges).

    A paste of full coverage through the stamp as its mask: where the canvas is empty this copies the
    stamp exactly, and where two stamps' antialiased edges meet the coverages combine as a union
    (a + b - ab) instead of the later one erasing the earlier.
    """
    canvas.paste(255, (x, y, x + stamp.width, y + stamp.height), stamp)


@functools.lru_cache(maxsize=2)
def _coverage(size: tuple[int, int], spec: WatermarkSpec, text: str) -> tuple[Image.Image, Image.Image | None]:
    """The coverage of the glyphs and of the outlined glyphs (None without an outline), mode L, 0..255.

    The layout is horizontal rows of the repeated text on a square that covers the image at any
    rotation, turned by ``spec.angle`` about the image's centre: rows become continuous diagonal lines,
    so every crop of the image carries text. Rather than rotating that whole square (about 50 ms per
    mask at 1600 px, measured 2026-11-27; paid again for every order since the text holds its receipt
    id), each run is rotated once (``_stamp``, cached) and placed where the rotation takes its pen
    origin, rounded to the pixel. Cached per (size, spec, text).

    Runs without a digit (the template's words, the shop's name) are placed once per size and kept
    (``_placed``); a new order copies them and places only its runs with digits (the receipt id, a date,
    a version number). Digits have one advance width in the shipped font, so the text's width -- and with
    it every run's position -- stays the same from one receipt id to the next of the same length.
    """
    w, h = size
    font_px = max(6, round(spec.size * max(w, h)))
    font = _font(str(spec.font_file()), font_px)
    unit = (text or "PROOF") + "     "
    unit_w = max(1.0, font.getlength(unit))
    runs = _runs(unit, font)
    varying = tuple(r for r in runs if any(ch.isdigit() for ch in r[0]))
    fill, stroked = _placed(size, spec, unit_w, tuple(r for r in runs if r not in varying))
    fill = fill.copy()
    stroked = stroked.copy() if stroked is not None else None
    _draw(fill, stroked, spec, unit_w, varying)
    return fill, stroked


#: Sizes and texts whose digit-free runs are kept placed (two L images each, ~1.9 MB apiece at 1600 px).
@functools.lru_cache(maxsize=4)
def _placed(size: tuple[int, int], spec: WatermarkSpec, unit_w: float,
            runs: tuple[tuple[str, float], ...]) -> tuple[Image.Image, Image.Image | None]:
    """The coverage of just ``runs`` (each with its pen x in the text) over the whole layout."""
    fill = Image.new("L", size, 0)
    stroked = Image.new("L", size, 0) if spec.outline else None
    _draw(fill, stroked, spec, unit_w, runs)
    return fill, stroked


def _draw(fill: Image.Image, stroked: Image.Image | None, spec: WatermarkSpec, unit_w: float,
          runs: tuple[tuple[str, float], ...]) -> None:
    """Place every repeat of ``runs`` on the rotated rows (see ``_coverage``) into the two masks."""
    w, h = fill.size
    font_px = max(6, round(spec.size * max(w, h)))
    font_path = str(spec.font_file())
    side = math.ceil(math.hypot(w, h)) + 2 * font_px
    pitch = max(font_px + 2, round(spec.line_spacing * font_px))
    stroke = max(1, round(font_px / 14)) if spec.outline else 0
    stamps = [(_stamp(font_path, font_px, stroke, spec.angle, run), x) for run, x in runs]
    a = math.radians(spec.angle)
    cos, sin = math.cos(a), math.sin(a)
    centre = side / 2
    x0, y0 = (side - w) // 2, (side - h) // 2
    for row, top in enumerate(range(-pitch, side + pitch, pitch)):
        # Stagger rows by a fraction of the text width so words do not line up in columns.
        start = stroke - round(((row * 0.38) % 1.0) * unit_w)
        for repeat in range(math.ceil((side - start) / unit_w) + 1):
            for stamp, offset in stamps:
                dx, dy = start + repeat * unit_w + offset - centre, top - centre
                x = cos * dx + sin * dy + centre - x0 - stamp.anchor[0]
                y = -sin * dx + cos * dy + centre - y0 - stamp.anchor[1]
                if x >= w or y >= h or x + stamp.fill.width <= 0 or y + stamp.fill.height <= 0:
                    continue
                _place(fill, stamp.fill, round(x), round(y))
                if stroked is not None and stamp.stroked is not None:
                    _place(stroked, stamp.stroked, round(x), round(y))


def watermark_masks(size: tuple[int, int], spec: WatermarkSpec, text: str) -> tuple[
        Image.Image, Image.Image | None]:
    """The raw (fill, outline-ring) coverage masks for an image of ``size``, mode L, 0..255."""
    fill, stroked = _coverage(size, spec, text)
    return fill, (ImageChops.subtract(stroked, fill) if stroked is not None else None)


class LayerCacheInfo(NamedTuple):
    hits: int
    misses: int
    currsize: int


_LayerKey = tuple[tuple[int, int], WatermarkSpec, str, str]


class _Layers:
    """The last ``kept`` layers, least recently used first; ``functools.lru_cache``'s calls and counters.

    Unlike ``lru_cache`` it drops the oldest layer *before* building a new one, not after: a new order's
    first save then builds into the buffers the dropped layer gave back, instead of holding both (7.2 MB
    at 1600 px) at the worker's peak. A caller asking for a layer that another thread is building waits
    for that build instead of starting its own.
    """

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._layers: OrderedDict[_LayerKey, tuple[Image.Image, Image.Image]] = OrderedDict()
        self._lock = threading.Lock()  # the layer is built ahead on a second thread
        self._building: dict[_LayerKey, threading.Event] = {}  # layers a thread is building now
        self._hits = self._misses = 0

    def __call__(self, size: tuple[int, int], spec: WatermarkSpec, text: str, mode: str) -> tuple[
            Image.Image, Image.Image]:
        key = (size, spec, text, mode)
        while True:
            with self._lock:
                found = self._layers.get(key)
                if found is not None:
                    self._layers.move_to_end(key)
                    self._hits += 1
                    return found
                building = self._building.get(key)
                if building is None:
                    self._misses += 1
                    while len(self._layers) >= self.kept:
                        self._layers.popitem(last=False)
                    building = self._building[key] = threading.Event()
                    break
            # Another thread builds this very layer (the preview's ahead-of-time build): wait for it rather
            # than build it twice on two cores; if that build failed, the next round builds it here.
            building.wait()
        try:
            built = _build_layer(size, spec, text, mode)
            with self._lock:
                self._layers[key] = built
                while len(self._layers) > self.kept:  # other layers were built meanwhile
                    self._layers.popitem(last=False)
            return built
        finally:
            with self._lock:
                del self._building[key]
            building.set()

    def cache_info(self) -> LayerCacheInfo:
        with self._lock:
            return LayerCacheInfo(self._hits, self._misses, len(self._layers))

    def cache_clear(self) -> None:
        with self._lock:
            self._layers.clear()
            self._hits = self._misses = 0


def _build_layer(size: tuple[int, int], spec: WatermarkSpec, text: str, mode: str) -> tuple[
        Image.Image, Image.Image]:
    """(colour layer, mask) to burn in with one masked paste; the opacity is folded into the mask.

    The mask is the outlined glyphs' coverage times the opacity. Under it, each channel of the layer
    goes from the ring colour to the fill colour with the glyphs' own coverage: a lookup table over the
    fill mask per distinct channel pair (one, shared, for greys such as the default white on black).
    That is about 3 ms at 1600 px, where a masked paste of the ring colour alone took 10 ms
    (measured 2026-11-27, 2-core bench machine, Pillow 13).
    """
    fill, stroked = _coverage(size, spec, text)
    colour = _rgb(spec.color)
    opacity = [round(v * spec.opacity) for v in range(256)]
    if stroked is None:
        layer = Image.new("RGB", size, colour)
        mask = fill.point(opacity)
    else:
        ring_colour = _rgb(spec.outline_color) if spec.outline_color else _contrast(colour)
        pairs = list(zip(ring_colour, colour, strict=True))
        bands = {pair: fill.point([round(pair[0] + (pair[1] - pair[0]) * v / 255) for v in range(256)])
                 for pair in set(pairs)}
        layer = bands[pairs[0]].convert("RGB") if len(bands) == 1 else Image.merge("RGB", [bands[p] for p in pairs])
        mask = stroked.point(opacity)
    return (layer if mode == "RGB" else layer.convert(mode)), mask


#: Layers kept per worker: an artist saving one order again and again reuses its layer; a new order
#: builds its own in a few milliseconds, so keeping many (7.5 MB each at 1600 px) is not worth the memory.
watermark_layer = _Layers(kept=4)


def apply_watermark(im: Image.Image, spec: WatermarkSpec, text: str,
                    box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Burn the watermark into ``im`` (RGB or L) in place and return it; with ``box``, into that region
    only (the same pixels there as a whole burn-in: the layer is always laid out for all of ``im``)."""
    if not spec.enabled or spec.opacity == 0 or not text:
        return im
    layer, mask = watermark_layer(im.size, spec, text, im.mode)
    if box is None:
        im.paste(layer, (0, 0), mask)
    else:
        im.paste(layer.crop(box), box, mask.crop(box))
    return im
