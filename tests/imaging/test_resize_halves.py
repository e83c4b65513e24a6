"""The two-thread final resample gives the pixels of one resize (exactly with BOX, within one level with the
previews' BILINEAR and with LANCZOS)."""

from __future__ import annotations

import threading

import pytest
from PIL import Image, ImageChops

from kaalwatch.imaging.preview import SPLIT_RESIZE_PIXELS, resize_in_halves


@pytest.mark.parametrize(("source", "target"), [((3000, 2000), (1600, 1067)), ((2001, 2999), (533, 799)),
                                                ((4000, 1001), (1600, 401))])
@pytest.mark.parametrize("resample", [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])
def test_halves_equal_one_resize(source: tuple[int, int], target: tuple[int, int],
                                 resample: Image.Resampling) -> None:
    im = Image.merge("RGB", [Image.effect_noise(source, 60) for _ in range(3)])
    assert im.width * im.height >= SPLIT_RESIZE_PIXELS
    before = threading.active_count()
    split = resize_in_halves(im, target, resample)
    assert threading.active_count() == before  # the helper thread is joined, nothing lingers
    assert split.size == target
    difference = ImageChops.difference(split, im.resize(target, resample))
    if resample is Image.Resampling.BOX:
        assert difference.getbbox() is None
    else:  # wider filters: Pillow rounds its horizontal pass per box
        assert max(high for _, high in difference.getextrema()) <= 1
