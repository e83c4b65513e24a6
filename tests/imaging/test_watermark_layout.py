"""The watermark's stamped layout against the straightforward one: rows of text rotated as a whole."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from kaalwatch.imaging import watermark as wm

TEXT = "PROOF — not for print · Kaal Studio · #3141592653"


def rotated_rows(size: tuple[int, int], spec: wm.WatermarkSpec, text: str) -> Image.Image:
    """Reference: draw every row on the covering square, rotate the square, crop the middle."""
    w, h = size
    font_px = max(6, round(spec.size * max(w, h)))
    font = wm._font(str(spec.font_file()), font_px)
    side = math.ceil(math.hypot(w, h)) + 2 * font_px
    unit = text + "     "
    unit_w = font.getlength(unit)
    pitch = max(font_px + 2, round(spec.line_spacing * font_px))
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for row, top in enumerate(range(-pitch, side + pitch, pitch)):
        start = -round(((row * 0.38) % 1.0) * unit_w)
        draw.text((start, top), unit * (math.ceil(side / unit_w) + 2), font=font, fill=255)
    turned = canvas.rotate(spec.angle, resample=Image.Resampling.BICUBIC)
    x0, y0 = (side - w) // 2, (side - h) // 2
    return turned.crop((x0, y0, x0 + w, y0 + h))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference at a quarter of the size (placement is rounded to the pixel)."""
    return float(np.abs(np.asarray(a.reduce(4), dtype=float) - np.asarray(b.reduce(4), dtype=float)).mean())


@pytest.mark.parametrize(("size", "angle"), [((1600, 1200), 30.0), ((900, 1600), -45.0), ((400, 300), 10.0)])
def test_stamped_runs_match_whole_rows_rotated(size: tuple[int, int], angle: float) -> None:
    spec = wm.WatermarkSpec(outline=False, angle=angle)
    fill, ring = wm.watermark_masks(size, spec, TEXT)
    assert ring is None and fill.size == size
    assert mean_difference(fill, rotated_rows(size, spec, TEXT)) < 4
    # The comparison can tell layouts apart: the same rows turned the other way are far off.
    mirrored = wm.WatermarkSpec(outline=False, angle=-angle)
    assert mean_difference(fill, rotated_rows(size, mirrored, TEXT)) > 20


def test_a_new_order_rotates_only_the_runs_that_hold_its_own_fields() -> None:
    spec = wm.WatermarkSpec(size=0.05)
    wm.watermark_masks((1000, 800), spec, "PROOF — not for print · Kaal Studio · #1001")
    before = wm._stamp.cache_info().misses
    wm.watermark_masks((1000, 800), spec, "PROOF — not for print · Kaal Studio · #1002")
    assert wm._stamp.cache_info().misses - before == 1  # the digit "2"; PROOF, —, not, ... come from the cache


def test_once_every_digit_is_stamped_a_new_receipt_id_rotates_nothing_and_reuses_the_placed_words() -> None:
    spec = wm.WatermarkSpec(size=0.04)
    wm.watermark_masks((1200, 900), spec, "PROOF · Kaal Studio · #3012345678")
    wm.watermark_masks((1200, 900), spec, "PROOF · Kaal Studio · #9012345678")
    stamps, placed = wm._stamp.cache_info().misses, wm._placed.cache_info().hits
    fill, ring = wm.watermark_masks((1200, 900), spec, "PROOF · Kaal Studio · #3141592653")
    assert wm._stamp.cache_info().misses == stamps
    assert wm._placed.cache_info().hits == placed + 1
    # Digit by digit, the receipt id still reads as one run rotated whole would.
    whole = rotated_rows((1200, 900), wm.WatermarkSpec(size=0.04, outline=False), "PROOF · Kaal Studio · #3141592653")
    alone, _ = wm.watermark_masks((1200, 900), wm.WatermarkSpec(size=0.04, outline=False),
                                  "PROOF · Kaal Studio · #3141592653")
    assert mean_difference(alone, whole) < 4 and ring is not None and fill.size == (1200, 900)


def test_outline_ring_surrounds_the_fill_without_covering_it() -> None:
    fill, ring = wm.watermark_masks((800, 600), wm.WatermarkSpec(), TEXT)
    assert ring is not None
    f, r = np.asarray(fill, dtype=int), np.asarray(ring, dtype=int)
    assert (r > 128).mean() > 0.01
    assert ((f > 250) & (r > 5)).mean() < 0.001  # solid glyph interiors carry no ring
    layer, mask = wm.watermark_layer((800, 600), wm.WatermarkSpec(opacity=0.5), TEXT, "RGB")
    pixels = np.asarray(layer, dtype=int)
    assert pixels[f > 250].min() >= 245  # white fill (its antialiased edge may hold a trace of ring)
    assert pixels[(r > 250) & (f < 5)].max() <= 10  # black ring, the contrasting colour
    assert np.asarray(mask).max() == round(255 * 0.5)


def test_long_runs_are_split_so_no_rotation_spans_the_image() -> None:
    font = wm._font(str(wm.SHIPPED_FONT), 40)
    runs = wm._runs("京都アートスタジオ京都アートスタジオ  #12", font)
    assert all(len(run) <= wm.RUN_CHARS for run, _ in runs)
    assert "".join(run for run, _ in runs) == "京都アートスタジオ京都アートスタジオ#12"
    offsets = [x for _, x in runs]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_the_oldest_layer_is_dropped_before_a_new_one_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """So a new order's layer reuses the dropped one's buffers instead of both being held at the peak."""
    layers = wm._Layers(kept=2)
    held_while_building: list[int] = []
    real = wm._build_layer

    def build(size: tuple[int, int], spec: wm.WatermarkSpec, text: str, mode: str) -> tuple[Image.Image, Image.Image]:
        held_while_building.append(layers.cache_info().currsize)
        return real(size, spec, text, mode)

    monkeypatch.setattr(wm, "_build_layer", build)
    spec = wm.WatermarkSpec()
    first = layers((200, 100), spec, "PROOF #1", "RGB")
    for n in range(2, 5):
        layers((200, 100), spec, f"PROOF #{n}", "RGB")
    assert held_while_building == [0, 1, 1, 1]
    assert layers((200, 100), spec, "PROOF #4", "RGB") is layers((200, 100), spec, "PROOF #4", "RGB")
    assert layers.cache_info() == (2, 4, 2)
    assert layers((200, 100), spec, "PROOF #1", "RGB") is not first  # dropped long ago: built again
