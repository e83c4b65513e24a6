"""A JPEG encoded band by band and joined by restart markers (``kaalwatch.imaging.jpeg_bands``).

The promise is exact: the joined file decodes to the very pixels of Pillow's single encode of the whole
image, at every size (widths and heights that are not whole MCUs, a band taller than the image), quality
and mode. Any slip in the join (a wrong restart interval, a marker out of turn, a height left as the
first band's) makes the decoder fail or shifts pixels, and these comparisons fail with it.
"""

from __future__ import annotations

import io
import random
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kaalwatch.imaging import jpeg_bands
from kaalwatch.imaging.jpeg_bands import BandEncoder

from .conftest import artwork


def whole(im: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    options = {"subsampling": jpeg_bands.SUBSAMPLING} if im.mode == "RGB" else {}
    im.save(out, "JPEG", quality=quality, **options)
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def segments(data: bytes) -> list[int]:
    """The markers of the header's segments, SOI excluded, up to and including SOS."""
    found, pos = [], 2
    while True:
        found.append(data[pos + 1])
        if data[pos + 1] == 0xDA:
            return found
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")


def scan_markers(data: bytes) -> list[int]:
    """The markers inside the entropy-coded data (not stuffing 0xFF00), EOI included."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    return [data[i + 1] for i in range(start, len(data) - 1) if data[i] == 0xFF and data[i + 1] != 0x00]


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 260), height=st.integers(1, 300), band_rows=st.sampled_from([16, 32, 64, 128]),
       quality=st.integers(1, 95), mode=st.sampled_from(["RGB", "L"]), seed=st.integers(0, 10_000))
def test_the_joined_file_decodes_to_the_pixels_of_one_encode(width: int, height: int, band_rows: int,
                                                             quality: int, mode: str, seed: int) -> None:
    im = artwork(width, height, seed=seed).convert(mode)
    joined = jpeg_bands.encode(im, quality, band_rows)
    reference = pixels(whole(im, quality))
    got = pixels(joined)
    assert got.shape == reference.shape
    assert np.array_equal(got, reference)


@pytest.mark.parametrize(("height", "bands"), [(64, 1), (65, 2), (1067, 17), (8 * 64 + 1, 9)])
def test_restart_markers_count_round_after_each_band(height: int, bands: int) -> None:
    im = artwork(333, height, seed=height)
    data = jpeg_bands.encode(im, 85, 64)
    assert scan_markers(data) == [0xD0 + k % 8 for k in range(bands - 1)] + [0xD9]
    assert (0xDD in segments(data)) == (bands > 1)  # a DRI segment only when there are markers to count
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.size == (333, height)


def test_the_restart_interval_is_one_band_of_mcus() -> None:
    data = jpeg_bands.encode(artwork(1600, 200, seed=1), 85, 64)
    at = data.index(b"\xff\xdd")
    assert int.from_bytes(data[at + 4:at + 6], "big") == (64 // 16) * 100  # 4 MCU rows of 100 MCUs at 4:2:0


def test_bands_added_in_any_order_from_two_threads_give_the_same_file() -> None:
    im = artwork(700, 1000, seed=3)
    in_order = jpeg_bands.encode(im, 80, 32)
    tops = list(range(0, 1000, 32))
    random.Random(5).shuffle(tops)
    encoder = BandEncoder(im.size, 80, 32)

    def add(part: list[int]) -> None:
        for top in part:
            encoder.add(im.crop((0, top, 700, min(1000, top + 32))), top)

    threads = [threading.Thread(target=add, args=(tops[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert encoder.rows == 1000
    assert encoder.finish() == in_order
    assert np.array_equal(pixels(in_order), pixels(whole(im, 80)))


def test_wrong_bands_are_refused_with_the_reason() -> None:
    im = artwork(40, 70, seed=4)
    with pytest.raises(ValueError, match="multiple of 16"):
        BandEncoder(im.size, 85, 24)
    encoder = BandEncoder(im.size, 85, 32)
    with pytest.raises(ValueError, match="expected 32"):
        encoder.add(im.crop((0, 0, 40, 16)), 0)
    with pytest.raises(ValueError, match="expected 6"):
        encoder.add(im.crop((0, 32, 40, 64)), 64)
    with pytest.raises(ValueError, match="40 px wide"):
        encoder.add(im.crop((0, 0, 39, 32)), 0)
    with pytest.raises(ValueError, match="must be RGB"):
        encoder.add(im.crop((0, 0, 40, 32)).convert("L"), 0)
    for wrong in (16, 96, -32):
        with pytest.raises(ValueError, match="multiple of 32 rows below 70"):
            encoder.add(im.crop((0, 0, 40, 32)), wrong)
    encoder.add(im.crop((0, 0, 40, 32)), 0)
    with pytest.raises(ValueError, match="added twice"):
        encoder.add(im.crop((0, 0, 40, 32)), 0)
    with pytest.raises(ValueError, match="32 of 70 rows"):
        encoder.finish()
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        BandEncoder((0, 10), 85, 16)
