"""Banded decoding of striped TIFFs and PSD composites (``kaalwatch.imaging.bands``).

Every layout the band path accepts must give exactly the pixels of a whole decode followed by the same
reduction; every layout it does not accept must fall back to the whole decode; a file cut short or
corrupt in one band must fail as the whole decode fails, with one clear error.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms

from kaalwatch.errors import ImageError
from kaalwatch.imaging import PreviewSpec, WatermarkSpec, bands, render_previews
from kaalwatch.imaging import decode as decode_module
from kaalwatch.imaging.bands import BandReader, _tiff_container, band_reader, decode_in_bands
from kaalwatch.imaging.decode import decode

from .conftest import artwork, write_psd

WHITE = (255, 255, 255)


def grey_or_colour(w: int, h: int, mode: str, seed: int = 0) -> Image.Image:
    im = artwork(w, h, alpha=mode == "RGBA", seed=seed)
    return im.convert("L") if mode == "L" else im


def tiff(path: Path, im: Image.Image, rows: int, compression: str = "tiff_lzw", predictor: int = 1) -> Path:
    bands_per_sample = len(im.getbands())
    info = {317: predictor} if predictor != 1 else {}
    im.save(path, "TIFF", compression=compression, strip_size=rows * im.width * bands_per_sample, tiffinfo=info)
    with Image.open(path) as check:  # the file really has the layout the test is about
        assert check.tag_v2.get(278) == rows, check.tag_v2.get(278)
        assert check.tag_v2.get(317, 1) == predictor
    return path


def psd(path: Path, im: Image.Image, rle: bool = True) -> Path:
    if im.mode == "L":
        path.write_bytes(_grey_psd(im, rle))
        return path
    return write_psd(im, path, rle=rle)


def _grey_psd(im: Image.Image, rle: bool) -> bytes:
    """A one-channel greyscale PSD (``write_psd`` writes RGB documents)."""
    w, h = im.size
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, 1, h, w, 8, 1) + bytes(12)
    if not rle:
        return head + struct.pack(">H", 0) + im.tobytes()
    rows = [_packbits(im.tobytes()[y * w:(y + 1) * w]) for y in range(h)]
    return head + struct.pack(">H", 1) + struct.pack(f">{h}H", *map(len, rows)) + b"".join(rows)


def _packbits(row: bytes) -> bytes:
    """PackBits with literal runs only: valid, and enough for a decoder test."""
    out = bytearray()
    for i in range(0, len(row), 128):
        chunk = row[i:i + 128]
        out += bytes([len(chunk) - 1]) + chunk
    return bytes(out)


def decode_both(path: Path, edge: int, monkeypatch: pytest.MonkeyPatch, *, background: tuple[int, int, int] | None
                = WHITE, threads: int = 2, band_bytes: int = 2048) -> tuple[Image.Image, Image.Image, list]:
    """(banded result, whole-decode result, the bands read) of ``decode(path, edge)``."""
    reads: list[tuple[int, int]] = []
    real = decode_module.band_reader

    def spy(im: Image.Image, fd: int) -> BandReader | None:
        reader = real(im, fd)
        if reader is None:
            return None

        def read(top: int, bottom: int) -> Image.Image:
            reads.append((top, bottom))
            return reader.read(top, bottom)

        return dataclasses.replace(reader, read=read)

    with monkeypatch.context() as patch:
        patch.setattr(decode_module, "band_reader", spy)
        patch.setattr(bands, "BAND_BYTES", band_bytes)
        banded = decode(path, edge, background=background, threads=threads).image
        patch.setattr(decode_module, "band_reader", lambda im, fd: None)
        whole = decode(path, edge, background=background, threads=threads).image
    return banded, whole, sorted(reads)


def assert_same(banded: Image.Image, whole: Image.Image) -> None:
    assert (banded.mode, banded.size) == (whole.mode, whole.size)
    assert ImageChops.difference(banded, whole).getbbox() is None


def assert_tiles_rows(reads: list[tuple[int, int]], height: int) -> None:
    assert len(reads) >= 2, reads
    assert reads[0][0] == 0 and reads[-1][1] == height
    assert all(a[1] == b[0] for a, b in itertools.pairwise(reads)), reads  # no gap, no overlap


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("compression", "predictor"), [
    ("tiff_lzw", 1), ("tiff_lzw", 2), ("tiff_adobe_deflate", 1), ("tiff_adobe_deflate", 2), ("packbits", 1),
])
@pytest.mark.parametrize(("rows", "edge"), [(1, 97), (3, 48), (7, 32)])
def test_striped_tiff_in_bands_is_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                                   compression: str, predictor: int, rows: int, edge: int) -> None:
    path = tiff(tmp_path / "a.tif", grey_or_colour(97, 61, mode), rows, compression, predictor)
    banded, whole, reads = decode_both(path, edge, monkeypatch)
    assert_tiles_rows(reads, 61)
    assert all(top % rows == 0 for top, _ in reads)
    assert_same(banded, whole)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("rle", [True, False])
@pytest.mark.parametrize("edge", [97, 48, 32])
def test_psd_composite_in_bands_is_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                                    rle: bool, edge: int) -> None:
    path = psd(tmp_path / "a.psd", grey_or_colour(97, 61, mode, seed=3), rle)
    banded, whole, reads = decode_both(path, edge, monkeypatch)
    assert_tiles_rows(reads, 61)
    assert_same(banded, whole)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(("compression", "predictor"), [(1, 1), (8, 1), (8, 2)])
def test_16_bit_tiff_in_either_byte_order_is_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              order: str, compression: int, predictor: int) -> None:
    """Photoshop's 16-bit documents: samples (and the predictor's differences) in the file's byte order."""
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 65535, size=(61, 97, 3), dtype=np.uint16)
    stored = pixels
    if predictor == 2:  # horizontal differencing per sample, modulo 2**16, as a writer stores it
        stored = np.concatenate([pixels[:, :1], np.diff(pixels, axis=1)], axis=1)
    rows = [stored[y:y + 4].astype(f"{order}u2").tobytes() for y in range(0, 61, 4)]
    strips = [zlib.compress(strip) for strip in rows] if compression == 8 else rows
    path = tmp_path / "deep.tif"
    path.write_bytes(_tiff_container(97, 61, 4, 16, 3, 2, compression, predictor, (), strips, order))
    banded, whole, reads = decode_both(path, 97, monkeypatch)
    assert_tiles_rows(reads, 61)
    assert_same(banded, whole)
    assert np.array_equal(np.asarray(banded), (pixels >> 8).astype(np.uint8))  # the file's own pixels


def test_cmyk_tiff_and_psd_in_bands_are_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmyk = grey_or_colour(97, 61, "RGB").convert("CMYK")
    paths = [tiff(tmp_path / "print.tif", cmyk, 3)]
    planes = tmp_path / "print.psd"
    write_psd(Image.merge("RGBA", cmyk.split()), planes)
    data = bytearray(planes.read_bytes())
    data[24:26] = struct.pack(">H", 4)  # colour mode 4: CMYK
    planes.write_bytes(bytes(data))
    paths.append(planes)
    for path in paths:
        banded, whole, reads = decode_both(path, 48, monkeypatch)
        assert banded.mode == "CMYK"
        assert_tiles_rows(reads, 61)
        assert_same(banded, whole)


def test_transparent_bands_reduce_premultiplied_without_a_background(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiff(tmp_path / "a.tif", grey_or_colour(90, 70, "RGBA"), 2)
    banded, whole, reads = decode_both(path, 30, monkeypatch, background=None)
    assert banded.mode == "RGBA"
    assert_tiles_rows(reads, 70)
    assert_same(banded, whole)


def test_one_thread_gives_the_same_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = psd(tmp_path / "a.psd", grey_or_colour(120, 90, "RGB"))
    banded, whole, reads = decode_both(path, 40, monkeypatch, threads=1)
    assert_tiles_rows(reads, 90)
    assert_same(banded, whole)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=st.integers(2, 70), h=st.integers(3, 70), rows=st.integers(1, 20), edge=st.integers(1, 70),
       mode=st.sampled_from(["L", "RGB", "RGBA"]), kind=st.sampled_from(["tiff", "psd"]),
       band_bytes=st.integers(1, 4000))
def test_any_size_strip_and_band_gives_the_whole_decode(tmp_path_factory: pytest.TempPathFactory,
                                                         monkeypatch: pytest.MonkeyPatch, w: int, h: int, rows: int,
                                                         edge: int, mode: str, kind: str, band_bytes: int) -> None:
    folder = tmp_path_factory.mktemp("bands")
    im = grey_or_colour(w, h, mode, seed=w * h)
    rows = min(rows, h - 1)
    path = tiff(folder / "a.tif", im, rows) if kind == "tiff" else psd(folder / "a.psd", im)
    banded, whole, reads = decode_both(path, edge, monkeypatch, band_bytes=band_bytes)
    assert_same(banded, whole)
    if reads:
        assert reads[0][0] == 0 and reads[-1][1] == h


def _point_last_strip_past_the_end(path: Path) -> None:
    """Move the last strip's offset so its bytes run 40 past the end of the file, as in a TIFF whose
    directory comes first and whose copy was cut off."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    with Image.open(path) as im:
        count = im.tag_v2[279][-1]
    for k in range(entries):
        tag, kind, n, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * k)
        if tag == 273:
            assert kind == 4 and n > 1
            struct.pack_into("<I", data, value + 4 * (n - 1), len(data) - count + 40)
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no StripOffsets tag")


def test_a_tiff_cut_short_fails_with_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiff(tmp_path / "a.tif", grey_or_colour(97, 61, "RGB"), 2)
    _point_last_strip_past_the_end(path)
    monkeypatch.setattr(bands, "BAND_BYTES", 2048)
    with pytest.raises(ImageError, match="truncated") as caught:
        decode(path, 48, background=WHITE, threads=2)
    assert "\n" not in str(caught.value)


def test_a_hostile_strip_size_is_refused_before_any_buffer_is_allocated(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiff(tmp_path / "a.tif", grey_or_colour(97, 61, "RGB"), 2)
    data = bytearray(path.read_bytes())
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for k in range(entries):
        tag, _kind, n, _value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * k)
        if tag == 279:  # StripByteCounts, rewritten as LONGs at the end: the third strip claims 4 GB
            with Image.open(path) as im:
                counts = list(im.tag_v2[279])
            counts[2] = 0xFFFF_FFF0
            struct.pack_into("<HHII", data, ifd + 2 + 12 * k, tag, 4, n, len(data))
            data += struct.pack(f"<{n}I", *counts)
    path.write_bytes(bytes(data))
    with Image.open(path) as im:
        assert im.tag_v2[279][2] == 0xFFFF_FFF0
    monkeypatch.setattr(bands, "BAND_BYTES", 2048)
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="truncated"):
            decode(path, 48, background=WHITE, threads=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20, peak


def test_a_psd_cut_short_fails_with_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = psd(tmp_path / "a.psd", grey_or_colour(97, 61, "RGB"))
    cut = tmp_path / "cut.psd"
    cut.write_bytes(path.read_bytes()[:-500])
    monkeypatch.setattr(bands, "BAND_BYTES", 2048)
    with pytest.raises(ImageError, match="truncated"):
        decode(cut, 48, background=WHITE, threads=2)


def test_a_corrupt_tiff_strip_fails_like_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiff(tmp_path / "a.tif", grey_or_colour(97, 61, "RGB"), 2)
    data = bytearray(path.read_bytes())
    with Image.open(path) as opened:
        offset, count = opened.tag_v2[273][15], opened.tag_v2[279][15]
    data[offset:offset + count] = b"\xff" * count  # one strip's LZW codes replaced
    path.write_bytes(bytes(data))
    outcomes = []
    for reader in (band_reader, lambda im, fd: None):
        monkeypatch.setattr(decode_module, "band_reader", reader)
        monkeypatch.setattr(bands, "BAND_BYTES", 2048)
        try:
            outcomes.append(decode(path, 48, background=WHITE, threads=2).image.tobytes())
        except ImageError as exc:
            assert "\n" not in str(exc)
            outcomes.append(b"error")
    assert outcomes[0] == outcomes[1]


def test_a_corrupt_psd_row_spoils_only_its_band(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each PSD row has its byte count in the table, so a band starts where its rows start: a corrupt row
    spoils its band, where Pillow's whole decode reads on through the channel and shifts every row after."""
    path = psd(tmp_path / "a.psd", grey_or_colour(97, 61, "RGB"))
    clean, _, _ = decode_both(path, 97, monkeypatch, band_bytes=97 * 4 * 8)  # bands of 8 rows
    with Image.open(path) as opened:
        table_end, green = opened.tile[0].offset, opened.tile[1].offset
    counts = struct.unpack(">183H", path.read_bytes()[table_end - 366:table_end])  # 3 channels x 61 rows
    row_30 = green + sum(counts[61:61 + 30])
    data = bytearray(path.read_bytes())
    data[row_30:row_30 + 40] = b"\x80" * 40  # PackBits no-ops: the green channel's row 30 comes up short
    path.write_bytes(bytes(data))
    spoiled, _, reads = decode_both(path, 97, monkeypatch, band_bytes=97 * 4 * 8)
    assert (24, 32) in reads
    difference = ImageChops.difference(clean, spoiled).getbbox()
    assert difference is not None and difference[1] >= 24 and difference[3] <= 32, difference


def psd_planes(path: Path, planes: list[Image.Image], colour: int, rle: bool, *,
               alpha_ids: list[int] | None = None, layers: int = 0) -> Path:
    """A PSD whose composite stores ``planes`` (L images) as its channels, in PSD colour mode ``colour``;
    with ``alpha_ids``, image resource 1053 (an identifier per extra channel, 0 for transparency); with
    ``layers``, a layer section of that many empty layers (negative: the composite has transparency)."""
    w, h = planes[0].size
    resources = b""
    if alpha_ids is not None:
        data = struct.pack(f">{len(alpha_ids)}I", *alpha_ids)
        resources = b"8BIM" + struct.pack(">H", 1053) + b"\x00\x00" + struct.pack(">I", len(data)) + data
    section = b""
    if layers:
        # An empty layer: no pixels, no channels, blend mode normal, no mask or blending ranges, no name.
        record = struct.pack(">4iH", 0, 0, 0, 0, 0) + b"8BIMnorm" + bytes([255, 0, 0, 0])
        record += struct.pack(">I", 12) + struct.pack(">II", 0, 0) + b"\x00\x00\x00\x00"
        info = struct.pack(">h", layers) + record * abs(layers)
        info += b"\x00" * (len(info) % 2)
        section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    head = (b"8BPS" + struct.pack(">H6xHIIHH", 1, len(planes), h, w, 8, colour) + struct.pack(">I", 0)
            + struct.pack(">I", len(resources)) + resources + struct.pack(">I", len(section)) + section)
    if not rle:
        path.write_bytes(head + struct.pack(">H", 0) + b"".join(p.tobytes() for p in planes))
        return path
    rows = [_packbits(p.tobytes()[y * w:(y + 1) * w]) for p in planes for y in range(h)]
    path.write_bytes(head + struct.pack(">H", 1) + struct.pack(f">{len(rows)}H", *map(len, rows)) + b"".join(rows))
    return path


@pytest.mark.parametrize(("mode", "colour", "extras"), [("L", 1, 1), ("RGB", 3, 2), ("RGB", 3, 3), ("CMYK", 4, 1),
                                                        ("CMYK", 4, 2), ("LAB", 9, 1)])
@pytest.mark.parametrize("rle", [True, False])
@pytest.mark.parametrize(("edge", "band_bytes"), [(97, 2048), (48, 2048), (97, 1 << 20)])
def test_saved_selections_and_spot_channels_leave_the_composite_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, colour: int, extras: int, rle: bool, edge: int,
        band_bytes: int) -> None:
    # Photoshop stores each saved selection or spot colour as one more channel of the composite. Pillow
    # reads the colour channels of such an RLE file from the wrong offsets (a garbled preview).
    im = grey_or_colour(97, 61, "RGB", seed=5)
    base = {"L": [im.convert("L")], "RGB": [*im.split()], "CMYK": [*im.convert("CMYK").split()],
            "LAB": [*im.convert("LAB").split()]}[mode]
    selections = [Image.linear_gradient("L").resize(im.size).rotate(90 * i) for i in range(extras)]
    plain = psd_planes(tmp_path / "plain.psd", base, colour, rle)
    extra = psd_planes(tmp_path / "extra.psd", base + selections, colour, rle)
    banded, whole, _ = decode_both(plain, edge, monkeypatch, band_bytes=band_bytes)
    assert_same(banded, whole)  # without the extra channels, Pillow's own decode is the reference
    monkeypatch.setattr(bands, "BAND_BYTES", band_bytes)
    expected = decode(plain, edge).image
    got = decode(extra, edge).image
    assert_same(got, expected)
    # The preview a buyer sees, too: the same pixels as the file without the extra channels.
    out = tmp_path / "out"
    out.mkdir()
    spec = PreviewSpec(long_edge=edge, thumb_edge=24, watermark=WatermarkSpec(enabled=False))
    render_previews(plain, out / "a.jpg", out / "a-t.jpg", spec, "")
    render_previews(extra, out / "b.jpg", out / "b-t.jpg", spec, "")
    with Image.open(out / "a.jpg") as a, Image.open(out / "b.jpg") as b:
        assert_same(b, a)


@pytest.mark.parametrize("rle", [True, False])
@pytest.mark.parametrize("band_bytes", [2048, 1 << 20])
@pytest.mark.parametrize(("extras", "alpha_ids", "layers", "alpha"), [
    (1, None, 2, None),  # a layered document on an opaque background: its fourth channel is a saved selection
    (1, [7], 0, None),  # a flat document whose one extra channel has an identifier: a saved selection
    (2, None, -1, 3),  # a transparent layered document with a saved selection: the first extra is alpha
    (2, [9, 0], 0, 4),  # the identifiers say which extra channel is the transparency
    (1, None, 0, 3),  # neither layers nor identifiers: a fourth channel is alpha, as Pillow reads it
])
def test_the_transparency_of_a_psd_composite_is_the_channel_the_file_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extras: int, alpha_ids: list[int] | None, layers: int,
        alpha: int | None, rle: bool, band_bytes: int) -> None:
    im = grey_or_colour(97, 61, "RGB", seed=6)
    transparency = Image.radial_gradient("L").resize(im.size)
    selection = Image.linear_gradient("L").resize(im.size).rotate(90)
    planes = [*im.split(), *[transparency if 3 + i == alpha else selection for i in range(extras)]]
    path = psd_planes(tmp_path / "doc.psd", planes, 3, rle, alpha_ids=alpha_ids, layers=layers)
    with Image.open(path) as opened:
        assert opened.size == im.size  # Pillow reads the layer section it has to skip
    reference = [*im.split(), transparency] if alpha is not None else [*im.split()]
    expected_path = psd_planes(tmp_path / "expected.psd", reference, 3, rle)
    monkeypatch.setattr(bands, "BAND_BYTES", band_bytes)
    for background in (WHITE, None):
        got = decode(path, 48, background=background).image
        expected = decode(expected_path, 48, background=background).image
        assert got.mode == ("RGBA" if alpha is not None and background is None else "RGB")
        assert_same(got, expected)


@pytest.mark.parametrize("layout", ["single strip", "jpeg strips", "16-bit", "57 channels"])
def test_other_layouts_are_decoded_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    im = grey_or_colour(97, 61, "RGB")
    if layout == "single strip":
        path = tmp_path / "a.tif"
        im.save(path, "TIFF", compression="tiff_lzw", strip_size=1 << 20)
    elif layout == "jpeg strips":
        path = tmp_path / "a.tif"
        im.save(path, "TIFF", compression="jpeg", strip_size=8 * 97 * 3)
    elif layout == "16-bit":
        path = tmp_path / "a.tif"
        im.convert("I;16").save(path, "TIFF", compression="tiff_lzw", strip_size=2 * 97 * 2)
    else:  # more channels than a PSD may have: not a file this module vouches for
        path = psd_planes(tmp_path / "a.psd", [*im.split()] * 19, 3, rle=False)
    with Image.open(path) as opened, path.open("rb") as fh:
        assert band_reader(opened, fh.fileno()) is None
    banded, whole, reads = decode_both(path, 48, monkeypatch) if layout != "57 channels" else (None, None, [])
    assert reads == []
    if banded is not None and whole is not None:
        assert_same(banded, whole)


def test_an_error_in_one_band_stops_the_others_and_is_raised_once() -> None:
    done: list[int] = []

    def read(top: int, bottom: int) -> Image.Image:
        if top == 20:
            raise OSError("band 20 is broken")
        done.append(top)
        return Image.new("RGB", (10, bottom - top))

    reader = BandReader((10, 400), 1, read)
    with pytest.raises(OSError, match="band 20"):
        decode_in_bands(reader, 1, lambda part, factor: part, threads=2, band_bytes=400)
    assert len(done) < 39  # the others stopped soon after, not at the end of the image


def test_an_image_of_one_band_is_left_to_the_whole_decode() -> None:
    reader = BandReader((10, 40), 1, lambda top, bottom: Image.new("RGB", (10, bottom - top)))
    assert decode_in_bands(reader, 1, lambda part, factor: part, band_bytes=1 << 20) is None


@pytest.mark.parametrize("turn", range(1, 9))
def test_a_turned_tiff_in_bands_is_the_whole_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   turn: int) -> None:
    """Pillow reports a TIFF's size upright and turns its pixels as it loads them; bands are read in the
    stored layout and turned after, so both give the same upright image, size and colour profile. (Sides
    that divide by the reduction: otherwise a turned image's box grid starts at the other edge, a shift of
    part of a pixel.)"""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "turned.tif"
    grey_or_colour(96, 60, "RGB").save(path, "TIFF", compression="tiff_lzw", strip_size=2 * 96 * 3,
                                       tiffinfo={274: turn}, icc_profile=icc)
    reads: list[tuple[int, int]] = []
    real = decode_module.band_reader

    def spy(im: Image.Image, fd: int) -> BandReader | None:
        reader = real(im, fd)
        assert reader is not None and reader.size == (96, 60)  # the strips' layout, whatever the turn
        reads.append(reader.size)
        return reader

    monkeypatch.setattr(bands, "BAND_BYTES", 2048)
    monkeypatch.setattr(decode_module, "band_reader", spy)
    banded = decode(path, 48, background=WHITE, threads=2)
    monkeypatch.setattr(decode_module, "band_reader", lambda im, fd: None)
    whole = decode(path, 48, background=WHITE, threads=2)
    assert reads
    assert (banded.source_size, banded.orientation, banded.icc) == (whole.source_size, whole.orientation, icc)
    assert banded.source_size == ((60, 96) if turn >= 5 else (96, 60))
    assert_same(banded.image, whole.image)
