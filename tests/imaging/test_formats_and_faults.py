"""Classification, and every hostile or broken input ending as one clean ImageError line.

Hostile files go through what the watcher really runs on a save: its completeness rule
(``complete.incomplete``), the identity check (``decode.check_identity``) and the preview worker's
``render_previews``; each ends as a one-line ``ImageError`` and writes no preview."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch.errors import ImageError
from kaalwatch.imaging import (
    FileKind,
    PreviewSpec,
    classify,
    render_previews,
    render_reference_thumbnail,
)
from kaalwatch.imaging.complete import incomplete
from kaalwatch.imaging.decode import MAX_EXIF_BYTES, check_identity, sniff
from kaalwatch.imaging.limits import DEFAULT_MAX_PIXELS

from .conftest import artwork, png_bytes, png_with_size, write_psd, write_zip


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.png", FileKind.RASTER), ("a.JPG", FileKind.RASTER), ("a.jpeg", FileKind.RASTER),
        ("a.tif", FileKind.RASTER), ("a.TIFF", FileKind.RASTER), ("a.webp", FileKind.RASTER),
        ("a.bmp", FileKind.RASTER), ("a.psd", FileKind.PSD), ("a.psb", FileKind.PSD),
        ("a.kra", FileKind.KRA), ("a.ora", FileKind.ORA), ("a.procreate", FileKind.PROCREATE),
        ("a.HEIC", FileKind.HEIC), ("a.heif", FileKind.HEIC), ("a.afphoto", FileKind.OTHER),
        ("a.clip", FileKind.OTHER), ("a.svg", FileKind.OTHER), ("noext", FileKind.OTHER),
        ("a.kra~", FileKind.OTHER),
    ],
)
def test_classify_by_suffix(name: str, kind: FileKind) -> None:
    assert classify(Path(name)) is kind


def _one_line_error(fn: object, *args: object) -> str:
    with pytest.raises(ImageError) as info:
        fn(*args)  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


def render(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileKind:
    """The preview worker's job on ``path`` (as the watcher submits it); the kind it rendered."""
    out = Path(tempfile.mkdtemp(prefix="out-", dir=path.parent))
    spec = PreviewSpec(max_pixels=max_pixels)
    try:
        return render_previews(path, out / "p.jpg", out / "t.jpg", spec, "x").source_kind
    except ImageError:
        assert not any(out.iterdir()), "a failed render left a file behind"
        raise


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "empty" in _one_line_error(render, path)


def test_truncated_png_is_an_error(tmp_path: Path) -> None:
    data = png_bytes(artwork(300, 200))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    assert incomplete(path)  # the watcher's first verdict: still being written
    message = _one_line_error(render, path)
    assert "cut.png" in message and "truncated" in message


def test_truncated_jpeg_is_an_error(tmp_path: Path) -> None:
    buf = io.BytesIO()
    artwork(800, 600).save(buf, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    assert incomplete(path)
    assert "truncated" in _one_line_error(render, path)


def test_decompression_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_with_size(60_000, 60_000))
    # Pillow's own guard fires first at this size; either way the message names the bomb.
    assert "decompression bomb" in _one_line_error(render, path, 100_000_000)
    smaller = tmp_path / "bomb2.png"
    smaller.write_bytes(png_with_size(12_000, 12_000))
    message = _one_line_error(render, smaller, 100_000_000)
    assert "decompression bomb" in message and "12000x12000" in message


def test_pixel_cap_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    artwork(200, 100).save(path)
    assert render(path, 20_000) is FileKind.RASTER
    assert "limit" in _one_line_error(render, path, 19_999)


def test_png_that_is_really_a_zip(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "fake.png", {"a.txt": b"hello"})
    assert "ZIP archive" in _one_line_error(check_identity, path)
    assert "ZIP archive" in _one_line_error(render, path)


def test_svg_is_not_rendered(tmp_path: Path, out: Path) -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    disguised = tmp_path / "drawing.png"
    disguised.write_bytes(svg)
    assert "SVG" in _one_line_error(render, disguised)
    real = tmp_path / "drawing.svg"
    real.write_bytes(svg)
    result = render_previews(real, out / "p.jpg", out / "t.jpg", PreviewSpec(), "x")
    assert result.preview_path is None and result.note and ".svg" in result.note
    assert "not rendered" in _one_line_error(render_reference_thumbnail, real, out / "r.jpg")


def test_polyglot_png_with_zip_appended(tmp_path: Path) -> None:
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("payload.txt", b"not an image")
    path = tmp_path / "poly.png"
    path.write_bytes(png_bytes(artwork(64, 64)) + zbuf.getvalue())
    assert "polyglot" in _one_line_error(check_identity, path)
    assert "polyglot" in _one_line_error(render, path)


def test_zip_signature_inside_pixels_is_not_a_polyglot(tmp_path: Path) -> None:
    # The 4 signature bytes can occur by chance; only a well-formed record at EOF counts.
    path = tmp_path / "ok.png"
    im = Image.frombytes("L", (8, 1), b"PK\x05\x06" + b"\x00" * 4)
    im.save(path, compress_level=0)
    assert render(path) is FileKind.RASTER


def test_huge_exif_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exif.png"
    artwork(64, 64).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08" + b"\x00" * (MAX_EXIF_BYTES + 10))
    assert "EXIF" in _one_line_error(render, path)


def test_corrupt_psd_and_garbage(tmp_path: Path) -> None:
    psd = write_psd(artwork(64, 48), tmp_path / "a.psd")
    broken = tmp_path / "broken.psd"
    broken.write_bytes(psd.read_bytes()[:60])
    _one_line_error(render, broken)
    garbage = tmp_path / "noise.webp"
    garbage.write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x01" * 40)
    _one_line_error(render, garbage)


def test_kra_without_mergedimage_and_hostile_member_names(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.kra", {"../../escape.png": png_bytes(artwork(8, 8)), "/etc/x": b"1"})
    assert "mergedimage.png" in _one_line_error(render, path)
    assert not (tmp_path.parent / "escape.png").exists()


def test_zip_bomb_member_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "bomb.ora", {"mergedimage.png": b"\x00" * (50 << 20)},
                     compress=zipfile.ZIP_DEFLATED)
    assert "zip bomb" in _one_line_error(render, path)


def test_truncated_zip_container(tmp_path: Path) -> None:
    good = write_zip(tmp_path / "a.kra", {"mergedimage.png": png_bytes(artwork(32, 32))})
    cut = tmp_path / "cut.kra"
    cut.write_bytes(good.read_bytes()[:-30])
    _one_line_error(render, cut)


def test_kra_that_starts_as_a_png_is_refused(tmp_path: Path) -> None:
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("mergedimage.png", png_bytes(artwork(16, 16)))
    path = tmp_path / "poly.kra"
    path.write_bytes(png_bytes(artwork(16, 16)) + zbuf.getvalue())
    assert "PNG image" in _one_line_error(check_identity, path)
    assert "PNG image" in _one_line_error(render, path)


def test_missing_file(tmp_path: Path) -> None:
    _one_line_error(render, tmp_path / "gone.png")


def test_other_kinds_are_not_decoded(tmp_path: Path) -> None:
    path = tmp_path / "art.clip"
    path.write_bytes(b"CSFCHUNK" + b"\x00" * 100)
    check_identity(path)  # nothing to check: the watcher versions it as a file
    assert render(path) is FileKind.OTHER


def test_sniff_names_containers() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\n") == "png"
    assert sniff(b"PK\x03\x04rest") == "zip"
    assert sniff(b"\xef\xbb\xbf<svg ") == "svg"
    assert sniff(b"\x00\x00\x00\x18ftypheic") == "heif"
    assert sniff(b"hello") is None


def test_mutated_files_only_ever_raise_image_error(tmp_path: Path) -> None:
    """Seeded byte mutations of every container: success or ImageError, never another exception."""
    import logging
    import random
    import warnings

    im = artwork(48, 32)
    samples: dict[str, bytes] = {}
    for name, fmt in (("a.png", "PNG"), ("a.jpg", "JPEG"), ("a.tif", "TIFF"), ("a.webp", "WEBP"),
                      ("a.bmp", "BMP"), ("a.gif", "GIF")):
        buf = io.BytesIO()
        im.save(buf, fmt)
        samples[name] = buf.getvalue()
    samples["a.psd"] = write_psd(im, tmp_path / "src.psd").read_bytes()
    samples["a.kra"] = write_zip(tmp_path / "src.kra", {"mergedimage.png": png_bytes(im)}).read_bytes()
    rng = random.Random(1234)
    spec = PreviewSpec()
    logging.disable(logging.CRITICAL)  # psd-tools logs every broken channel
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, data in samples.items():
                for _ in range(25):
                    buf = bytearray(data)
                    for _ in range(rng.randint(1, 6)):
                        buf[rng.randrange(len(buf))] = rng.randrange(256)
                    path = tmp_path / name
                    path.write_bytes(bytes(buf))
                    for call in (lambda p=path: check_identity(p),
                                 lambda p=path: render_previews(p, tmp_path / "o.jpg", tmp_path / "t.jpg",
                                                                spec, "X")):
                        try:
                            call()
                        except ImageError as exc:
                            assert "\n" not in str(exc)
    finally:
        logging.disable(logging.NOTSET)
