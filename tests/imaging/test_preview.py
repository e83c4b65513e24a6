"""Previews and thumbnails: every format, sizes, watermark by pixels, metadata stripping, caching keys."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from kaalwatch.errors import ImageError
from kaalwatch.imaging import (
    FileKind,
    PreviewSpec,
    WatermarkSpec,
    render_previews,
    render_reference_thumbnail,
    spec_key,
)
from kaalwatch.imaging.decode import fit

from .conftest import artwork, icc_swapped_primaries, png_bytes, write_psd, write_zip

TEXT = "PROOF — not for print · Kaal Studio · #3141592"


def _render(src: Path, out: Path, spec: PreviewSpec | None = None, text: str = TEXT):
    return render_previews(src, out / "p.jpg", out / "t.jpg", spec or PreviewSpec(), text)


def _grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.int16)


# ---------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "fmt", "save"),
    [
        ("a.png", "PNG", {}),
        ("a.jpg", "JPEG", {"quality": 90}),
        ("a.webp", "WEBP", {"quality": 90}),
        ("a.bmp", "BMP", {}),
        ("a.tif", "TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_raster_formats_render(make, out: Path, name: str, fmt: str, save: dict) -> None:
    src = make(name, fmt, artwork(2400, 1800), **save)
    result = _render(src, out)
    assert (result.width, result.height) == (2400, 1800)
    assert result.source_kind is FileKind.RASTER and not result.low_res and result.note is None
    with Image.open(out / "p.jpg") as p, Image.open(out / "t.jpg") as t:
        assert (p.format, p.size) == ("JPEG", (1600, 1200))
        assert (t.format, t.size) == ("JPEG", (400, 300))
    assert result.preview_size == (1600, 1200) and result.thumb_size == (400, 300)


def test_layered_tiff_uses_the_first_page_as_composite(tmp_path: Path, out: Path) -> None:
    src = tmp_path / "layers.tif"
    composite = Image.new("RGB", (800, 600), (20, 200, 40))
    layers = [Image.new("RGBA", (800, 600), (250, 0, 0, 255)), Image.new("RGBA", (800, 600), (0, 0, 250, 128))]
    composite.save(src, compression="tiff_adobe_deflate", save_all=True, append_images=layers)
    _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    with Image.open(out / "p.jpg") as p:
        r, g, b = p.convert("RGB").getpixel((400, 300))
    assert g > 180 and r < 60 and b < 80


@pytest.mark.parametrize("rle", [True, False])
def test_psd_with_composite(tmp_path: Path, out: Path, rle: bool) -> None:
    src = write_psd(artwork(900, 600), tmp_path / "art.psd", rle=rle)
    result = _render(src, out)
    assert result.source_kind is FileKind.PSD and (result.width, result.height) == (900, 600)
    with Image.open(out / "p.jpg") as p:
        assert p.size == (900, 600)  # never enlarged


def test_psd_without_composite_needs_psd_tools(tmp_path: Path, out: Path, monkeypatch) -> None:
    src = write_psd(artwork(120, 80), tmp_path / "nocomp.psd", has_composite=False)
    real_import = builtins.__import__

    def no_psd_tools(name: str, *args, **kwargs):
        if name.startswith("psd_tools"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psd_tools)
    with pytest.raises(ImageError, match=r"kaalwatch\[psd\]"):
        _render(src, out)


def test_psd_without_composite_composes_with_psd_tools(tmp_path: Path, out: Path) -> None:
    psd_tools = pytest.importorskip("psd_tools", reason="psd-tools is the optional [psd] extra")
    doc = psd_tools.PSDImage.frompil(Image.new("RGB", (200, 100), (250, 20, 20)))
    src = tmp_path / "layers.psd"
    doc.save(src)
    result = _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    assert (result.width, result.height) == (200, 100)
    # psd-tools only warns (and paints black) on a broken channel; that must still be an error.
    cut = tmp_path / "cut.psd"
    cut.write_bytes(src.read_bytes()[:200])
    with pytest.raises(ImageError):
        _render(cut, out)


@pytest.mark.parametrize("kind", ["kra", "ora"])
def test_krita_and_openraster_merged_image(tmp_path: Path, out: Path, kind: str) -> None:
    members = {"mimetype": b"application/x-krita", "mergedimage.png": png_bytes(artwork(1000, 700)),
               "preview.png": png_bytes(artwork(100, 70))}
    src = write_zip(tmp_path / f"art.{kind}", members)
    result = _render(src, out)
    assert (result.width, result.height) == (1000, 700) and not result.low_res
    assert result.source_kind is FileKind(kind)


def test_procreate_thumbnail_is_marked_low_res(tmp_path: Path, out: Path) -> None:
    src = write_zip(tmp_path / "art.procreate", {"Document.archive": b"bplist00",
                                                 "QuickLook/Thumbnail.png": png_bytes(artwork(300, 400))})
    result = _render(src, out)
    assert result.low_res and result.note and "low resolution" in result.note
    with Image.open(out / "p.jpg") as p:
        assert p.size == (300, 400)


def test_other_files_get_a_note_not_an_error(tmp_path: Path, out: Path) -> None:
    src = tmp_path / "art.afphoto"
    src.write_bytes(b"\x00" * 10)
    result = _render(src, out)
    assert result.preview_path is None and result.thumb_path is None
    assert result.note == "no preview for .afphoto files: export a PNG beside it"
    assert not list(out.iterdir())


def test_heic_reference_thumbnail(tmp_path: Path, out: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is the optional [heif] extra")
    src = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(artwork(1200, 900)).save(src, quality=80)
    render_reference_thumbnail(src, out / "ref.jpg")
    with Image.open(out / "ref.jpg") as ref:
        assert ref.size == (400, 300) and "exif" not in ref.info
    assert _render(src, out).source_kind is FileKind.HEIC


# -------------------------------------------------------------------------------- pixels and metadata


def test_exif_gps_stripped_and_orientation_honoured(tmp_path: Path, out: Path) -> None:
    im = Image.new("RGB", (600, 400), (255, 255, 255))
    im.paste((255, 0, 0), (0, 0, 100, 100))  # red block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    src = tmp_path / "phone.jpg"
    im.save(src, quality=95, exif=exif)
    with Image.open(src) as check:
        assert check.getexif().get_ifd(0x8825), "the sample must really carry GPS"
    result = _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    assert (result.width, result.height) == (400, 600)
    for name in ("p.jpg", "t.jpg"):
        raw = (out / name).read_bytes()
        assert b"Exif" not in raw and b"PhoneMaker" not in raw and b"ICC_PROFILE" not in raw
        with Image.open(out / name) as o:
            assert not o.getexif() and "icc_profile" not in o.info
    with Image.open(out / "p.jpg") as p:
        assert p.size == (400, 600)
        # After rotating clockwise the stored top-left is at the top-right.
        assert p.getpixel((380, 20))[0] > 200 and p.getpixel((380, 20))[1] < 60
        assert p.getpixel((20, 20)) > (230, 230, 230)


def test_transparency_flattened_onto_configured_background(make, out: Path) -> None:
    src = make("clear.png", "PNG", artwork(800, 800, alpha=True))
    _render(src, out, PreviewSpec(background="#203040", watermark=WatermarkSpec(enabled=False)))
    with Image.open(out / "p.jpg") as p:
        assert p.mode == "RGB"
        corner = p.getpixel((5, 5))
        assert all(abs(a - b) <= 4 for a, b in zip(corner, (0x20, 0x30, 0x40), strict=True))


def test_icc_profile_converted_to_srgb_and_dropped(tmp_path: Path, out: Path) -> None:
    # Red pixels tagged with a profile whose red primary is sRGB green must come out green.
    for name, fmt in (("wide.png", "PNG"), ("wide.jpg", "JPEG"), ("wide.tif", "TIFF")):
        src = tmp_path / name
        Image.new("RGB", (600, 400), (255, 0, 0)).save(src, fmt, icc_profile=icc_swapped_primaries())
        _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
        with Image.open(out / "p.jpg") as p:
            assert "icc_profile" not in p.info
            r, g, b = p.getpixel((300, 200))
        assert g > 200 and r < 60 and b < 60, (name, (r, g, b))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "srgb.png"
    Image.new("RGB", (600, 400), (255, 0, 0)).save(src, icc_profile=srgb)
    _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    with Image.open(out / "p.jpg") as p:
        assert p.getpixel((300, 200))[0] > 230


def test_cmyk_jpeg_becomes_rgb(make, out: Path) -> None:
    src = make("print.jpg", "JPEG", artwork(500, 400).convert("CMYK"))
    _render(src, out)
    with Image.open(out / "p.jpg") as p:
        assert p.mode == "RGB"


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path: Path, out: Path) -> None:
    arr = np.full((300, 300), 32768, dtype=np.uint16)
    src = tmp_path / "deep.png"
    Image.fromarray(arr).save(src)
    _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    assert abs(int(_grey(out / "p.jpg").mean()) - 128) <= 2


def test_watermark_present_in_every_region_at_configured_opacity(tmp_path: Path, out: Path) -> None:
    src = tmp_path / "grey.png"
    Image.new("RGB", (2000, 1500), (128, 128, 128)).save(src)
    opacity = 0.3
    marked = PreviewSpec(jpeg_quality=95, watermark=WatermarkSpec(opacity=opacity, outline=False))
    plain = PreviewSpec(jpeg_quality=95, watermark=WatermarkSpec(enabled=False))
    render_previews(src, out / "m.jpg", out / "mt.jpg", marked, TEXT)
    render_previews(src, out / "n.jpg", out / "nt.jpg", plain, TEXT)
    diff = _grey(out / "m.jpg") - _grey(out / "n.jpg")
    h, w = diff.shape
    for gy in range(4):
        for gx in range(4):
            cell = diff[gy * h // 4:(gy + 1) * h // 4, gx * w // 4:(gx + 1) * w // 4]
            assert (cell > 10).mean() > 0.02, f"no watermark in cell {gx},{gy}"
    # Inside glyphs white at 30 % over grey 128 gives 128 + 0.3 * 127 ≈ 166.
    expected = opacity * (255 - 128)
    assert abs(np.percentile(diff, 99.5) - expected) <= 5
    assert np.percentile(diff, 0.5) >= -3  # nothing darkened without an outline (bar JPEG ringing)
    thumb_diff = _grey(out / "mt.jpg") - _grey(out / "nt.jpg")
    assert (thumb_diff > 5).mean() > 0.02, "the thumbnail must carry the watermark too"


def test_outline_darkens_a_ring_for_white_paper(tmp_path: Path, out: Path) -> None:
    src = tmp_path / "white.png"
    Image.new("RGB", (1600, 1200), (255, 255, 255)).save(src)
    _render(src, out, PreviewSpec(jpeg_quality=95))
    assert (_grey(out / "p.jpg") < 230).mean() > 0.01


def test_outputs_are_atomic_and_leave_no_temp_files(make, out: Path) -> None:
    src = make("a.png", "PNG")
    (out / "p.jpg").write_bytes(b"old")
    _render(src, out)
    assert sorted(p.name for p in out.iterdir()) == ["p.jpg", "t.jpg"]
    assert oct(os.stat(out / "p.jpg").st_mode & 0o777) == "0o600"  # private: it shows the buyer's portrait


def test_spec_key_changes_with_what_changes_pixels() -> None:
    base = PreviewSpec()
    key = spec_key(base, TEXT)
    assert len(key) == 12 and key == spec_key(PreviewSpec(), TEXT)
    assert key != spec_key(base, TEXT + "!")
    assert key != spec_key(PreviewSpec(watermark=WatermarkSpec(template="{shop}")), TEXT)
    assert key != spec_key(PreviewSpec(watermark=WatermarkSpec(opacity=0.5)), TEXT)
    assert key != spec_key(PreviewSpec(long_edge=1200), TEXT)


def test_large_jpeg_uses_draft_and_stays_sharp_enough(make, out: Path) -> None:
    src = make("big.jpg", "JPEG", artwork(4000, 3000), quality=90)
    result = _render(src, out, PreviewSpec(watermark=WatermarkSpec(enabled=False)))
    assert result.preview_size == (1600, 1200)
    with Image.open(src) as original:
        reference = original.convert("RGB").resize((1600, 1200), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(reference, dtype=np.int16) - np.asarray(Image.open(out / "p.jpg"), dtype=np.int16))
    assert diff.mean() < 3.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(thin=st.integers(1, 40), long=st.integers(1, 12000), tall=st.booleans(),
       save=st.sampled_from([("JPEG", {"quality": 90}), ("JPEG", {"quality": 90, "progressive": True}),
                             ("PNG", {})]))
@example(thin=1, long=6000, tall=True, save=("JPEG", {"quality": 90}))
@example(thin=1, long=6000, tall=False, save=("JPEG", {"quality": 90}))
def test_strips_and_slivers_of_any_shape_render_at_their_size(tmp_path: Path, thin: int, long: int, tall: bool,
                                                               save: tuple[str, dict]) -> None:
    # A panorama, a bookmark, a 1 px rule: a 1 px wide JPEG once failed in the DCT-scaled decode.
    size = (thin, long) if tall else (long, thin)
    fmt, options = save
    src = tmp_path / f"strip.{fmt.lower()}"
    # Gradients with a little noise: pure noise overflows Pillow's progressive encoder buffer on a strip.
    y, x = np.mgrid[0:size[1], 0:size[0]]
    ramp = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 127 // (size[0] + size[1])], axis=2)
    noise = np.random.default_rng(long).integers(0, 6, ramp.shape)
    Image.fromarray((ramp + noise).clip(0, 255).astype(np.uint8)).save(src, fmt, **options)
    result = _render(src, tmp_path)
    assert result.preview_size == fit(size, 1600)
    with Image.open(tmp_path / "p.jpg") as preview, Image.open(tmp_path / "t.jpg") as thumb:
        assert preview.size == result.preview_size
        assert 1 <= max(thumb.size) <= 400


# ---------------------------------------------------------------------------------------------- writing


def test_preview_and_thumbnail_cost_one_fsync_each_and_leave_no_temp_file(tmp_path: Path, out: Path,
                                                                          monkeypatch) -> None:
    src = tmp_path / "a.png"
    artwork(900, 600).save(src)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    _render(src, out)
    # A cache rebuilt when lost: the files are synced before their rename, the folder is not.
    assert len(synced) == 2
    assert sorted(p.name for p in out.iterdir()) == ["p.jpg", "t.jpg"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in out.iterdir())


def test_a_preview_that_fails_to_encode_replaces_nothing(tmp_path: Path, out: Path, monkeypatch) -> None:
    src = tmp_path / "a.png"
    artwork(900, 600).save(src)
    _render(src, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real_save = Image.Image.save
    calls: list[int] = []

    def thumbnail_fails(self: Image.Image, *args, **kwargs) -> None:
        calls.append(1)
        if len(calls) == 2:  # the preview is encoded into its temp file; the thumbnail's encode fails
            raise OSError("disk full")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", thumbnail_fails)
    with pytest.raises(OSError, match="disk full"):
        _render(src, out, text="another watermark: other bytes")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
