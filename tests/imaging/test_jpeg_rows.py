"""JPEG rows resampled while the later rows decode (``kaalwatch.imaging.jpeg_rows``).

Each result is compared with Pillow's whole decode of the same file, resampled band by band over the same
source boxes: pixel for pixel, so a band that read a row before the decoder had written it cannot pass.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kaalwatch.errors import ImageError
from kaalwatch.imaging import jpeg_rows
from kaalwatch.imaging.decode import decode, fit
from kaalwatch.imaging.formats import classify
from kaalwatch.imaging.jpeg_rows import decode_resampled, eligible
from kaalwatch.imaging.preview import FINAL_FILTER, _prepare

from .conftest import artwork, icc_swapped_primaries

BILINEAR = Image.Resampling.BILINEAR


def jpeg(path: Path, im: Image.Image, **options: object) -> Path:
    im.save(path, "JPEG", quality=options.pop("quality", 90), **options)
    return path


def opened(path: Path, edge: int) -> Image.Image:
    """``path`` opened and drafted as ``decode`` does for a ``edge`` px preview."""
    im = Image.open(path)
    scale = next((s for s in (8, 4, 2) if max(im.size) / s >= edge), 1)
    if scale > 1:
        im.draft("RGB", (im.width // scale, im.height // scale))
    return im


def banded_reference(path: Path, edge: int, resample: Image.Resampling, band_rows: int) -> Image.Image:
    """Pillow's whole decode, resampled band by band over the boxes ``decode_resampled`` uses."""
    with Image.open(path) as probe:
        size = fit(probe.size, edge)
    with opened(path, edge) as im:
        im.load()
        out = Image.new("RGB", size)
        scale = im.height / size[1]
        edges = [*range(0, size[1], band_rows), size[1]]
        for top, bottom in itertools.pairwise(edges):
            part = im.resize((size[0], bottom - top), resample, box=(0, top * scale, im.width, bottom * scale))
            out.paste(part, (0, top))
        return out


def piped(path: Path, edge: int, resample: Image.Resampling = BILINEAR, band_rows: int = jpeg_rows.BAND_ROWS,
          block: int = jpeg_rows.BLOCK_BYTES) -> Image.Image | None:
    with Image.open(path) as probe:
        size = fit(probe.size, edge)
    with opened(path, edge) as im:
        return decode_resampled(im, size, resample, band_rows, block)


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(("size", "edge"), [((640, 480), 500), ((1200, 900), 400), ((900, 1600), 300),
                                            ((2000, 1125), 1600), ((1000, 700), 100)])
@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_each_band_is_the_whole_decode_resampled(tmp_path: Path, size: tuple[int, int], edge: int,
                                                 subsampling: int) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(*size, seed=size[0]), subsampling=subsampling)
    got = piped(path, edge, block=128)
    assert got is not None
    assert same(got, banded_reference(path, edge, BILINEAR, jpeg_rows.BAND_ROWS))
    with opened(path, edge) as im:
        whole = np.asarray(im.resize(got.size, BILINEAR), dtype=np.int16)
    assert np.abs(np.asarray(got, dtype=np.int16) - whole).max() <= 1  # Pillow rounds each band's box


@pytest.mark.parametrize("resample", [Image.Resampling.BOX, BILINEAR, Image.Resampling.BICUBIC,
                                      Image.Resampling.LANCZOS])
def test_every_filter_reads_only_decoded_rows(tmp_path: Path, resample: Image.Resampling) -> None:
    # The wider the filter, the further below a band its rows reach: one row too few would read zeros.
    path = jpeg(tmp_path / "a.jpg", artwork(800, 1200, seed=3), restart_marker_rows=1)
    got = piped(path, 700, resample, band_rows=7, block=512)
    assert got is not None and same(got, banded_reference(path, 700, resample, 7))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(17, 700), h=st.integers(17, 700), edge=st.integers(16, 650), quality=st.integers(30, 98),
       subsampling=st.sampled_from([0, 1, 2]), band_rows=st.integers(1, 90), block=st.integers(1, 2048),
       seed=st.integers(0, 9))
def test_any_size_band_and_piece_gives_the_whole_decode(tmp_path_factory: pytest.TempPathFactory, w: int,
                                                        h: int, edge: int, quality: int, subsampling: int,
                                                        band_rows: int, block: int, seed: int) -> None:
    path = jpeg(tmp_path_factory.mktemp("j") / "a.jpg", artwork(w, h, seed=seed), quality=quality,
                subsampling=subsampling)
    got = piped(path, edge, band_rows=band_rows, block=block)
    if fit((w, h), edge) == opened(path, edge).size:
        assert got is None  # the DCT scale gives the preview's size: nothing to resample, decoded whole
        return
    assert got is not None and same(got, banded_reference(path, edge, BILINEAR, band_rows))


def test_bands_are_resampled_while_the_later_rows_still_decode(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # Small pieces make the decode a long series of short calls, each letting the helper run in between:
    # even a loaded machine schedules it before the last of them.
    path = jpeg(tmp_path / "a.jpg", artwork(2400, 1800, seed=5))
    taken: list[tuple[bool, str]] = []
    take = jpeg_rows._Bands.take

    def spy(self: jpeg_rows._Bands, wait: bool) -> tuple[int, int] | None:
        band = take(self, wait)
        if band is not None:
            taken.append((self.decoded < 1800, threading.current_thread().name))
        return band

    monkeypatch.setattr(jpeg_rows._Bands, "take", spy)
    assert piped(path, 1500, band_rows=16, block=512) is not None
    early = [name for before_the_end, name in taken if before_the_end]
    assert early, "no band was resampled before the decode ended: the rows' progress was never seen"
    assert set(early) == {"kaalwatch-jpeg-resample"}
    assert len(taken) == -(-fit((2400, 1800), 1500)[1] // 16)  # every band exactly once


@pytest.mark.parametrize("kind", ["progressive", "grey", "cmyk", "no resample", "png"])
def test_what_it_does_not_take_is_left_to_the_whole_decode(tmp_path: Path, kind: str) -> None:
    im = artwork(900, 600, seed=2)
    path = tmp_path / ("a.png" if kind == "png" else "a.jpg")
    if kind == "progressive":
        jpeg(path, im, progressive=True)
    elif kind == "grey":
        jpeg(path, im.convert("L"))
    elif kind == "cmyk":
        jpeg(path, im.convert("CMYK"))
    elif kind == "png":
        im.save(path)
    else:
        jpeg(path, im)
    edge = 900 if kind == "no resample" else 500
    with Image.open(path) as probe:
        assert not eligible(probe, fit(probe.size, edge))
        assert decode_resampled(probe, fit(probe.size, edge), BILINEAR) is None
        probe.load()  # nothing was read from the file: the whole decode still gets every pixel
        with Image.open(path) as fresh:
            assert same(probe, fresh.convert(probe.mode) if fresh.mode != probe.mode else fresh)


def test_a_pillow_whose_rows_look_decoded_from_the_start_is_not_trusted(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(800, 600))
    real_paste = Image.Image.paste

    def paste_keeping_marks(self: Image.Image, im: object, box: object = None, mask: object = None) -> None:
        if im == 0:  # the marks' reset: a Pillow where it leaves the fourth byte set
            im = (0, 0, 0)  # a tuple colour sets it to 255
        real_paste(self, im, box, mask)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "paste", paste_keeping_marks)
    assert piped(path, 500) is None


def test_the_marks_start_clear_whatever_the_memory_held(monkeypatch: pytest.MonkeyPatch) -> None:
    canvas = Image.new("RGB", (300, 200), (9, 9, 9))  # every fourth byte 255: what a decoded row has
    assert all(jpeg_rows._row_decoded(canvas, y) for y in range(200))
    assert jpeg_rows._clear_marks(canvas)
    assert not any(jpeg_rows._row_decoded(canvas, y) for y in range(200))


def test_decode_returns_the_preview_size_with_two_threads_only(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(3000, 2000, seed=4))
    two = decode(path, 1600, threads=2, resample=FINAL_FILTER)
    assert two.image.size == (1600, 1067) and two.source_size == (3000, 2000)
    one = decode(path, 1600, threads=1, resample=FINAL_FILTER)
    assert one.image.size == (3000, 2000)  # one thread: decoded whole, resampled by the caller as before
    plain = decode(path, 1600, threads=2)
    assert plain.image.size == (3000, 2000)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_jpeg_comes_out_upright_as_before(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = jpeg(tmp_path / "a.jpg", artwork(1300, 700, seed=orientation), exif=exif)
    new, size, _, _ = _prepare(path, 600, "#ffffff", 10**8, classify(path), threads=2)
    old, old_size, _, _ = _prepare(path, 600, "#ffffff", 10**8, classify(path), threads=1)
    assert size == old_size and new.size == old.size
    assert np.abs(np.asarray(new, dtype=np.int16) - np.asarray(old, dtype=np.int16)).max() <= 1


def test_an_embedded_profile_is_still_applied(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.new("RGB", (1400, 900), (255, 0, 0)).save(path, "JPEG", quality=95, icc_profile=icc_swapped_primaries())
    im, _, _, _ = _prepare(path, 700, "#ffffff", 10**8, classify(path), threads=2)
    r, g, b = im.getpixel((350, 200))
    assert g > 200 and r < 60 and b < 60  # red tagged with swapped primaries is sRGB green


def test_a_jpeg_cut_short_fails_as_the_whole_decode_does(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(1600, 1200, seed=8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated") as piped_error:
        decode(path, 700, threads=2, resample=FINAL_FILTER)
    with pytest.raises(ImageError, match="truncated"):
        decode(path, 700, threads=1, resample=FINAL_FILTER)
    assert "\n" not in str(piped_error.value)


@pytest.mark.parametrize("where", [0.3, 0.6, 0.9])
def test_corrupt_data_gives_what_the_whole_decode_gives(tmp_path: Path, where: float) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(1600, 1200, seed=9))
    data = bytearray(path.read_bytes())
    at = int(len(data) * where)
    data[at:at + 40] = bytes(range(1, 41))  # garbage in the entropy-coded data, no marker bytes
    path.write_bytes(bytes(data))
    pixels: list[np.ndarray] = []
    errors: list[str] = []
    for threads in (2, 1):
        try:
            im, _, _, _ = _prepare(path, 700, "#ffffff", 10**8, classify(path), threads=threads)
            pixels.append(np.asarray(im, dtype=np.int16))
        except ImageError as exc:
            errors.append(exc.message)
    assert len(pixels) in (0, 2), f"only one way decoded it: {errors}"
    if pixels:
        assert np.abs(pixels[0] - pixels[1]).max() <= 1


def test_a_failing_band_stops_the_decode_and_is_raised_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(1600, 1200, seed=10))
    resize = Image.Image.resize
    calls = {"resize": 0, "feeds": 0}

    def failing(self: Image.Image, *args: object, **kwargs: object) -> Image.Image:
        calls["resize"] += 1
        if calls["resize"] == 2:
            raise MemoryError("no room for a band")
        return resize(self, *args, **kwargs)  # type: ignore[arg-type]

    probe = jpeg_rows._row_decoded

    def counting(canvas: Image.Image, y: int) -> bool:
        calls["feeds"] += 1
        return probe(canvas, y)

    monkeypatch.setattr(jpeg_rows, "_row_decoded", counting)
    assert piped(path, 1000, band_rows=8, block=1024) is not None
    whole_run, calls["feeds"] = calls["feeds"], 0
    monkeypatch.setattr(Image.Image, "resize", failing)
    threads_before = threading.active_count()
    with pytest.raises(MemoryError, match="no room"):
        piped(path, 1000, band_rows=8, block=1024)
    assert threading.active_count() == threads_before
    assert calls["feeds"] < whole_run / 2  # the decode stopped soon after the band failed


def test_an_mpo_from_a_phone_decodes_its_first_picture(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    first, second = artwork(1200, 900, seed=11), artwork(1200, 900, seed=12)
    first.save(path, "MPO", save_all=True, append_images=[second], quality=90)
    with Image.open(path) as im:
        assert im.format == "MPO"
    got = decode(path, 700, threads=2, resample=FINAL_FILTER).image
    with Image.open(path) as im:
        whole = np.asarray(im.convert("RGB").resize(got.size, FINAL_FILTER), dtype=np.int16)
    assert np.abs(np.asarray(got, dtype=np.int16) - whole).max() <= 1


def test_one_byte_at_a_time_resumes_wherever_the_decoder_stopped(tmp_path: Path) -> None:
    # The decoder suspends mid-marker and mid-block and resumes with the bytes it left over.
    path = jpeg(tmp_path / "a.jpg", artwork(300, 200, seed=13))
    got = piped(path, 130, band_rows=10, block=1)
    assert got is not None and same(got, banded_reference(path, 130, BILINEAR, 10))
