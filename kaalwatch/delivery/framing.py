"""Where a deliverable's aspect sits on the artwork, and which of its promises the artwork cannot keep.

Pure geometry over sizes, no pixels: the panel shows the frame before anything is built, and
:mod:`kaalwatch.delivery.build` cuts exactly the box computed here, so what the owner saw is what the buyer gets.

* The aspect follows the artwork: a 4:5 promise on a landscape drawing is 5:4; a square artwork takes the
  deliverable's ``square`` orientation (portrait by default, the convention for "8x10").
* A crop removes only what the aspect requires, along one axis; ``position`` (0..1) says where the frame sits
  along that axis, centred by default. ``fit: margins`` pads the whole artwork to the aspect instead.
* Checks: pixels below the promised long edge, below the promised DPI at the print size, a crop cutting more
  than ``delivery.max_crop_share`` of the art.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kaalwatch.delivery.limits import Check
from kaalwatch.delivery.names import ascii_words
from kaalwatch.model import Job
from kaalwatch.settings import Deliverable as Promise

CENTRE = 0.5
# A crop this close to nothing is no crop: rounding a 4:5 artwork to 2400x3000 may shave one pixel.
_NO_CUT = 0.002


@dataclass(frozen=True)
class Frame:
    """One deliverable's geometry on one artwork of ``width`` x ``height`` pixels."""

    width: int
    height: int
    box: tuple[int, int, int, int]  # the part of the artwork kept (left, top, right, bottom)
    canvas: tuple[int, int]  # size before scaling: the box, or the padded sheet for margins
    size: tuple[int, int]  # final pixels
    margins: bool
    axis: str  # "x" or "y": the axis the crop (or margins) runs along; "" when the art has the aspect
    position: float
    print_inches: tuple[float, float] | None  # oriented like the output
    checks: list[Check] = field(default_factory=list)

    @property
    def kept(self) -> float:
        """Share of the artwork's pixels the deliverable keeps (1.0 with margins: nothing is cut)."""
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top) / (self.width * self.height)

    @property
    def whole(self) -> bool:
        """The file is the artwork's own pixels, uncut and unscaled."""
        return not self.margins and self.size == (self.width, self.height)

    @property
    def portrait(self) -> bool:
        return self.size[1] >= self.size[0]

    @property
    def dpi(self) -> float | None:
        """Pixels per inch at the promised print size."""
        if not self.print_inches:
            return None
        return min(self.size[0] / self.print_inches[0], self.size[1] / self.print_inches[1])

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def promise_key(promise: Promise) -> str:
    """The stable key a job's crop position is saved under: the variant, else the format."""
    return ascii_words(promise.suffix).lower().replace(" ", "-") or promise.format


def inches(promise: Promise) -> tuple[float, float] | None:
    if not promise.print_inches:
        return None
    a, b = (float(part) for part in promise.print_inches.lower().split("x"))
    return (a, b) if a > 0 and b > 0 else None


def _ratio(promise: Promise) -> tuple[float, float] | None:
    if promise.aspect:
        a, b = (int(part) for part in promise.aspect.split(":"))
        return (a, b) if a > 0 and b > 0 else None
    return inches(promise)


def _oriented(pair: tuple[float, float], width: int, height: int, square: str) -> tuple[float, float]:
    short, long = sorted(pair)
    landscape = width > height or (width == height and square == "landscape")
    return (long, short) if landscape else (short, long)


def saved_position(job: Job | None, key: str) -> float:
    """The job's saved frame position for ``key``; centred when unset or not a number (hand-edited)."""
    raw = job.crop.get(key) if job is not None else None
    try:
        value = float(raw) if raw is not None and not isinstance(raw, bool) else CENTRE
    except (TypeError, ValueError):
        return CENTRE
    return min(1.0, max(0.0, value)) if math.isfinite(value) else CENTRE


def _half_up(value: float) -> int:
    """Rounding as the page's JavaScript does (Math.round), so a dragged frame is the box built."""
    return math.floor(value + 0.5)


def plan(width: int, height: int, promise: Promise, *, position: float = CENTRE, margins: bool | None = None,
         max_crop_share: float = 1.0) -> Frame:
    """The frame of ``promise`` on a ``width`` x ``height`` artwork (see the module docstring)."""
    width, height = max(1, int(width)), max(1, int(height))
    position = min(1.0, max(0.0, float(position)))
    pad = promise.fit == "margins" if margins is None else margins
    ratio = _ratio(promise)
    box = (0, 0, width, height)
    canvas = (width, height)
    axis = ""
    if ratio:
        rw, rh = _oriented(ratio, width, height, promise.square)
        if width * rh > height * rw * (1 + _NO_CUT):  # wider than the aspect
            axis = "x"
            if pad:
                canvas = (width, round(width * rh / rw))
            else:
                new_w = max(1, round(height * rw / rh))
                left = _half_up((width - new_w) * position)
                box, canvas = (left, 0, left + new_w, height), (new_w, height)
        elif height * rw > width * rh * (1 + _NO_CUT):  # taller than the aspect
            axis = "y"
            if pad:
                canvas = (round(height * rw / rh), height)
            else:
                new_h = max(1, round(width * rh / rw))
                top = _half_up((height - new_h) * position)
                box, canvas = (0, top, width, top + new_h), (width, new_h)
    inch = inches(promise)
    print_size = _oriented(inch, *canvas, promise.square) if inch else None
    target = promise.long_edge or (round(max(print_size) * promise.dpi) if print_size else 0)
    size = canvas
    if target and max(canvas) > target:
        scale = target / max(canvas)
        size = (max(1, round(canvas[0] * scale)), max(1, round(canvas[1] * scale)))
    frame = Frame(width, height, box, canvas, size, pad and bool(axis), axis, position, print_size)
    frame.checks.extend(_checks(frame, promise, max_crop_share))
    return frame


def _checks(frame: Frame, promise: Promise, max_crop_share: float) -> list[Check]:
    checks: list[Check] = []
    long_edge = max(frame.size)
    if promise.long_edge:
        checks.append(Check("pixels", long_edge >= promise.long_edge,
                            f"{long_edge} px of the promised {promise.long_edge} px"))
    if frame.print_inches:
        dpi = frame.dpi or 0
        w, h = frame.print_inches
        checks.append(Check("dpi", dpi >= promise.dpi - 0.5,
                            f"{dpi:.0f} DPI at {w:g}x{h:g} in, promised {promise.dpi}"))
    cut = 1 - frame.kept
    if frame.axis and not frame.margins:
        checks.append(Check("crop", cut <= max_crop_share + 1e-9,
                            f"crop cuts {cut:.0%} of the artwork (at most {max_crop_share:.0%})"))
    return checks
