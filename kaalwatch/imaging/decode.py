"""Open any supported file into a loaded PIL image as cheaply as its target size allows, or fail cleanly.

Every way a file can be hostile ends here as one ``ImageError`` with a one-line message: empty, truncated,
corrupt, a decompression bomb (pixel cap checked on the header, before any pixel is decoded), a ZIP or SVG
wearing an image suffix, a polyglot (an image with a ZIP archive glued to its end), a huge EXIF block,
ZIP members that are too big or compress suspiciously well.

Cheap paths (why the preview stays close to the cost of a bare decode):

* JPEG: ``draft`` asks libjpeg for DCT-domain scaling (1/2, 1/4, 1/8) so only the needed resolution is
  ever reconstructed. We pick the smallest scale whose long edge is still >= the target
  (``DRAFT_GAP`` = 1.0): a 4032-px phone photo decodes at half size (2016 px for a 1600-px preview), an
  8000-px one at a quarter. DCT scaling drops the high-frequency coefficients, a low-pass on the way,
  so the "decode at twice the target before the final filter" rule is not needed for antialiasing; the
  preview benchmark measures the result against a full-resolution Lanczos reference (SSIM, issue #19)
  for every JPEG size it times. Given the final filter and two threads, a baseline RGB JPEG is also
  resampled to the exact target while it decodes (``jpeg_rows``): each band of output rows as soon as
  the rows under it are decoded, on the second core.
* Everything else: after ``load()`` the image is shrunk by the largest integer factor that keeps it at
  least the target size (``REDUCE_GAP`` = 1.0) with ``Image.reduce`` (a box average in C, one pass, no
  float weights), and only that small image goes on to colour conversion, the final filter and the
  watermark. Pillow's own default gap is 2.0 because it is followed by Lanczos; our final filter is an
  area average too (see ``preview``), and an area average of an area average is still one, so a larger
  gap would only cost time: 8000 px -> ``reduce(5)`` is the 1600 px preview with no resample at all,
  4000 px -> ``reduce(2)`` then 1.25x.
* Striped TIFFs and PSD composites (the layered files artists save most) are decoded band by band on
  two threads, each band reduced as soon as it is decoded (``bands``): no full-size image, no memory map
  of the file, and about half the decode's time on two cores.
* RGBA is flattened onto the preview background while it is reduced, band by band (``flatten_reduce``):
  correct edges (the same result as a premultiplied reduction), no full-size second image, and no
  RGBA->RGBa conversion (Pillow's is slow: ~8 ns/pixel, more than the blend itself).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image

from kaalwatch.errors import ImageError
from kaalwatch.imaging.bands import band_reader, decode_in_bands
from kaalwatch.imaging.containers import compose_psd, ensure_heif, open_zip_member, psd_has_composite
from kaalwatch.imaging.formats import FileKind, classify
from kaalwatch.imaging.jpeg_rows import RowSink, decode_resampled, eligible
from kaalwatch.imaging.limits import DEFAULT_MAX_PIXELS, MAX_EXIF_BYTES, check_pixels, fail

#: JPEG DCT scaling keeps the long edge >= DRAFT_GAP x target (see the module docstring for why 1.0).
DRAFT_GAP = 1.0
#: Integer box reduction keeps the long edge >= REDUCE_GAP x target before the final filter.
REDUCE_GAP = 1.0
#: Rows per band when flattening/reducing alpha images: a few MB, so a band stays in cache.
_BAND_ROWS = 240

# MPO (multi-picture phone JPEGs) opens through the JPEG factory, so "JPEG" covers it.
# AVIF and JXL only where formats.classify says this installation decodes them.
_RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "DIB", "GIF", "AVIF", "JXL")


@dataclass
class Decoded:
    """A loaded, possibly reduced image plus what the preview step still needs from the original."""

    image: Image.Image
    kind: FileKind
    source_size: tuple[int, int]  # pixel size of the full-resolution source (before orientation)
    orientation: int  # EXIF orientation 1..8 (1 = as stored)
    icc: bytes | None  # embedded colour profile, converted to sRGB later on the small image
    low_res: bool = False
    note: str | None = None


# ----------------------------------------------------------------------------------------------------
# Sniffing: what the bytes are, whatever the name says


def sniff(head: bytes) -> str | None:
    """Name the container format from the first bytes of a file, or None if unknown."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"8BPS":
        return "psd"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return "avif"
    if head.startswith(b"\xff\x0a") or head[4:12] == b"JXL \r\n\x87\n":
        return "jxl"
    if head[4:8] == b"ftyp" and head[8:12] in (
        b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1",
    ):
        return "heif"
    if head[:5] == b"%PDF-":
        return "pdf"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "svg"
    if text.startswith((b"<!doctype html", b"<html")):
        return "html"
    if text.startswith(b"<?xml"):
        return "xml"
    return None


_EXPECTED: dict[FileKind, frozenset[str]] = {
    FileKind.RASTER: frozenset({"png", "jpeg", "tiff", "webp", "bmp", "gif", "avif", "jxl"}),
    FileKind.PSD: frozenset({"psd"}),
    FileKind.KRA: frozenset({"zip"}),
    FileKind.ORA: frozenset({"zip"}),
    FileKind.PROCREATE: frozenset({"zip"}),
    FileKind.HEIC: frozenset({"heif", "avif"}),
}

_DESCRIBE = {
    "zip": "a ZIP archive",
    "svg": "an SVG drawing (vector files are not rendered: export a PNG)",
    "pdf": "a PDF document",
    "html": "an HTML page",
    "xml": "an XML document",
}


def _check_container(path: Path, kind: FileKind, fh: IO[bytes], size: int) -> str:
    """Refuse empty files, contents that do not match the kind, and polyglots; return the sniffed type."""
    if size == 0:
        raise fail(path, "the file is empty (0 bytes)")
    head = fh.read(64)
    found = sniff(head)
    expected = _EXPECTED[kind]
    if found not in expected:
        if found in _EXPECTED[FileKind.RASTER] or found in ("psd", "heif"):
            what = f"a {found.upper()} image"
        else:
            what = _DESCRIBE.get(found or "", "not a recognised image")
        raise fail(path, f"is {what}, not a {kind.value.upper()} file as its name says")
    if found != "zip" and _has_zip_tail(fh, size):
        raise fail(path, f"is a {found} image with a ZIP archive appended (a polyglot file); refused")
    fh.seek(0)
    return found


def check_identity(path: Path) -> None:
    """Raise ImageError when a decodable file's bytes are not what its name says (a ZIP posing as a PNG, a
    polyglot): such a file will never "finish", so it is an error, not a save still being written."""
    kind = classify(path)
    if kind is FileKind.OTHER:
        return
    with _translate_errors(path), path.open("rb") as fh:
        _check_container(path, kind, fh, os.fstat(fh.fileno()).st_size)


def _has_zip_tail(fh: IO[bytes], size: int) -> bool:
    """True if the file ends with a well-formed ZIP end-of-central-directory record."""
    # Why so strict: compressed image data can contain the 4 signature bytes by chance; a real
    # record also ends exactly at EOF (its comment length says so) and points inside the file.
    tail_len = min(size, 65_535 + 22)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0:
        if pos + 22 <= len(tail):
            cd_size, cd_offset, comment_len = struct.unpack_from("<IIH", tail, pos + 12)
            record_at = size - tail_len + pos
            if pos + 22 + comment_len == len(tail) and cd_offset + cd_size <= record_at:
                return True
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    return False


# ----------------------------------------------------------------------------------------------------
# Opening


@contextlib.contextmanager
def _translate_errors(path: Path) -> Iterator[None]:
    """Turn whatever a decoder throws into one ImageError line."""
    try:
        with warnings.catch_warnings():
            # Our own cap (checked on the header) replaces Pillow's warning; keep it from being noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise fail(path, f"is a decompression bomb ({exc})") from exc
    except MemoryError as exc:
        raise fail(path, "needs more memory to decode than is available") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
            zipfile.BadZipFile, ZeroDivisionError, OverflowError, NotImplementedError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason or isinstance(exc, EOFError):
            reason = f"truncated or cut off while copying ({reason})"
        raise fail(path, f"cannot be decoded: {reason}") from exc


def _open(path: Path, kind: FileKind, max_pixels: int, fh: IO[bytes], stack: contextlib.ExitStack) -> tuple[
        Image.Image, bool, str | None]:
    """Open (header only where possible) the pixels of ``path`` read through ``fh``; returns (image,
    low_res, note)."""
    _check_container(path, kind, fh, os.fstat(fh.fileno()).st_size)
    if kind is FileKind.RASTER:
        im = Image.open(fh, formats=_RASTER_FORMATS)
    elif kind is FileKind.HEIC:
        ensure_heif()
        im = Image.open(fh, formats=("HEIF", "AVIF"))
    elif kind is FileKind.PSD:
        if not psd_has_composite(fh):
            return compose_psd(path, max_pixels), False, None
        fh.seek(0)
        try:
            im = Image.open(fh, formats=("PSD",))
        except (OSError, SyntaxError):
            # Pillow reads 8-bit PSD only; PSB and 16/32-bit documents need psd-tools.
            return compose_psd(path, max_pixels), False, None
    else:
        im = Image.open(open_zip_member(path, kind, stack), formats=("PNG", "JPEG"))
        if kind is FileKind.PROCREATE:
            return im, True, "low resolution: Procreate's embedded thumbnail; export a PNG for a full proof"
    return im, False, None


# ----------------------------------------------------------------------------------------------------
# Reduction


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Bring rare modes to one that ``reduce`` and the colour step handle; common modes pass untouched."""
    mode = im.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return im
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I") or mode == "F":
        # 16-bit and float greyscale: scale to 8 bits instead of clipping (convert("L") would clip).
        im = im.convert("I") if mode.startswith("I;16") else im
        scale = 1 / 257 if mode.startswith("I") else 255.0
        return im.point(lambda v: v * scale).convert("L")
    if mode in ("La", "RGBa"):
        return im.convert(mode.replace("a", "A"))
    return im.convert("RGB")  # YCbCr, LAB, HSV: rare in art files


def fit(size: tuple[int, int], edge: int) -> tuple[int, int]:
    """Scale ``size`` so its long edge is ``edge`` (never enlarging), keeping the aspect ratio."""
    w, h = size
    long_edge = max(w, h)
    if long_edge <= edge:
        return w, h
    scale = edge / long_edge
    return max(1, round(w * scale)), max(1, round(h * scale))


def reduce_factor(long_edge: int, target: int, gap: float = REDUCE_GAP) -> int:
    """Largest integer n with long_edge / n >= gap x target (at least 1)."""
    return max(1, math.floor(long_edge / (gap * target))) if target > 0 else 1


def reduce_image(im: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by an integer factor; alpha images premultiplied, band by band (see docstring)."""
    if factor <= 1:
        return im
    if im.mode not in ("RGBA", "LA"):
        return im.reduce(factor)
    w, h = im.size
    premul = {"RGBA": "RGBa", "LA": "La"}[im.mode]
    out = Image.new(premul, ((w + factor - 1) // factor, (h + factor - 1) // factor), None)  # all pasted over
    band = max(factor, (_BAND_ROWS // factor) * factor)
    for top in range(0, h, band):
        bottom = min(h, top + band)
        part = im.crop((0, top, w, bottom)).convert(premul).reduce(factor)
        out.paste(part, (0, top // factor))
    return out.convert(im.mode)


def flatten_reduce(im: Image.Image, factor: int, background: tuple[int, int, int]) -> Image.Image:
    """Composite RGBA/LA onto an opaque colour and box-reduce, band by band; returns RGB.

    Compositing onto an opaque background is linear in premultiplied colour, so flattening first and
    averaging after gives the same pixels as a premultiplied reduction followed by flattening -- but
    Pillow's masked paste is about 4x cheaper than its RGBA->RGBa conversion (measured 2026-11-27,
    Pillow 13). Bands keep every temporary small (no second full-size image, and no page faults for one).
    """
    w, h = im.size
    factor = max(1, factor)
    if im.mode != "RGBA":
        im = im.convert("RGBA")  # LA: rare, and converted whole for simplicity
    out = Image.new("RGB", ((w + factor - 1) // factor, (h + factor - 1) // factor), None)  # all pasted over
    band = max(factor, (_BAND_ROWS // factor) * factor)
    flat = Image.new("RGB", (w, band), background)  # one band buffer, reused
    for top in range(0, h, band):
        rows = min(band, h - top)
        if rows != band:
            flat = Image.new("RGB", (w, rows), background)
        elif top:
            flat.paste(background, (0, 0, w, band))
        # Paste the whole image shifted up: Pillow clips it to the band, so no cropped copy is made;
        # an RGBA image given as its own mask blends through its alpha channel.
        flat.paste(im, (0, -top), im)
        out.paste(flat.reduce(factor) if factor > 1 else flat, (0, top // factor))
    return out


# EXIF orientation (2..8) -> the transpose that makes the stored pixels upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def upright(im: Image.Image, orientation: int) -> Image.Image:
    """``im`` turned as its EXIF ``orientation`` says (1, or an unknown value, leaves it as it is)."""
    return im.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else im


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def decode(path: Path, target_edge: int, max_pixels: int = DEFAULT_MAX_PIXELS,
           kind: FileKind | None = None, background: tuple[int, int, int] | None = None,
           on_header: Callable[[tuple[int, int], int], None] | None = None, threads: int = 1,
           resample: Image.Resampling | None = None,
           row_sink: Callable[[tuple[int, int], int, bytes | None], RowSink | None] | None = None) -> Decoded:
    """Decode ``path`` to a loaded image no smaller than needed for a ``target_edge`` px long edge.

    With ``background``, transparent images come back already flattened onto it (RGB), which is
    the cheap way to reduce them (see ``flatten_reduce``).

    ``on_header(source_size, orientation)`` is called once the header has passed the pixel cap and before
    any pixel is decoded, so a caller can prepare work that needs only the size (the preview builds its
    watermark layer on another core meanwhile). The orientation is the EXIF one if the header has it.

    A striped TIFF or a PSD composite is decoded and reduced band by band on ``threads`` threads
    (``bands``); everything else is decoded whole, then reduced.

    With ``resample`` and two threads, a baseline RGB JPEG comes back already resampled with that filter
    to exactly ``fit(source_size, target_edge)`` (as stored, before its orientation): its rows are
    resampled on the second thread while the later ones decode (``jpeg_rows``). Then, if given,
    ``row_sink(output_size, orientation, icc_profile)`` is asked for a ``RowSink`` to hand the output's
    finished rows to as they come (None: no sink); it is called only on that path, before any pixel.
    """
    kind = kind or classify(path)
    if kind is FileKind.OTHER:
        raise fail(path, f"is a {path.suffix or 'suffix-less'} file, which is not decoded")
    with contextlib.ExitStack() as stack, _translate_errors(path):
        try:
            fh = stack.enter_context(path.open("rb"))
            im, low_res, note = _open(path, kind, max_pixels, fh, stack)
        except FileNotFoundError as exc:
            raise fail(path, "disappeared before it could be read") from exc
        source_size = im.size
        check_pixels(path, source_size, max_pixels)
        stored_turn = _orientation(im)
        # Pillow gives a TIFF's size already upright and turns its pixels as it loads them (then its
        # orientation reads 1): what follows sees a TIFF as upright whichever way it is decoded.
        turned_by_pillow = im.format == "TIFF"
        if on_header is not None:
            on_header(source_size, 1 if turned_by_pillow else stored_turn)
        if im.format in ("JPEG", "MPO"):
            long_edge = max(im.size)
            want = DRAFT_GAP * target_edge
            scale = next((s for s in (8, 4, 2) if long_edge / s >= want), 1)
            if scale > 1:
                # At least 1 px a side: Pillow divides by the requested size (a 1 px wide strip).
                im.draft(im.mode if im.mode in ("RGB", "L", "CMYK") else None,
                         (max(1, im.width // scale), max(1, im.height // scale)))
        factor = reduce_factor(max(im.size), target_edge)

        def shrink(part: Image.Image, factor: int) -> Image.Image:
            part = _normalise_mode(part)
            if background is not None and part.mode in ("RGBA", "LA"):
                return flatten_reduce(part, factor, background)
            return reduce_image(part, factor)

        reader = band_reader(im, fh.fileno()) if im.format in ("TIFF", "PSD") else None
        small = decode_in_bands(reader, factor, shrink, threads) if reader is not None else None
        if small is None and reader is not None and reader.pillow_misreads:
            small = shrink(reader.read(0, reader.size[1]), factor)  # one band, still not Pillow's decode
        if small is None and resample is not None and threads >= 2 and im.format in ("JPEG", "MPO"):
            size = fit(source_size, target_edge)
            sink = None
            if row_sink is not None and eligible(im, size):
                sink = row_sink(size, stored_turn, im.info.get("icc_profile") or None)
            small = decode_resampled(im, size, resample, sink=sink)
        if small is None:
            im.load()
        exif = im.info.get("exif")
        if isinstance(exif, bytes) and len(exif) > MAX_EXIF_BYTES:
            raise fail(path, f"carries {len(exif)} bytes of EXIF, over the {MAX_EXIF_BYTES} byte cap")
        orientation = _orientation(im)
        icc = im.info.get("icc_profile") or None
        if small is None:
            small = shrink(im, factor)  # the size a draft or Pillow's turn gave is the loaded size
        elif turned_by_pillow:  # bands are in the stored layout: turn them as Pillow's whole load does
            small, orientation = upright(small, stored_turn), 1
        return Decoded(small, kind, source_size, orientation, icc, low_res, note)
