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
  for every JPEG size it times.
* Everything else: after ``load()`` the image is shrunk by the largest integer factor that keeps it at
  least the target size (``REDUCE_GAP`` = 1.0) with ``Image.reduce`` (a box average in C, one pass, no
  float weights), and only that small image goes on to colour conversion, the final filter and the
  watermark. Pillow's own default gap is 2.0 because it is followed by Lanczos; our final filter is an
  area average too (see ``preview``), and an area average of an area average is still one, so a larger
  gap would only cost time: 8000 px -> ``reduce(5)`` is the 1600 px preview with no resample at all,
  4000 px -> ``reduce(2)`` then 1.25x.
* RGBA is flattened onto the preview background while it is reduced, band by band (``flatten_reduce``):
  correct edges (the same result as a premultiplied reduction), no full-size second image, and no
  RGBA->RGBa conversion (Pillow's is slow: ~8 ns/pixel, more than the blend itself).
"""

from __future__ import annotations

import contextlib
import io
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
from kaalwatch.imaging.formats import FileKind, classify

#: Default pixel cap: twice Pillow's own warning threshold (Pillow raises above this too).
DEFAULT_MAX_PIXELS = 2 * 89_478_485
#: A ZIP member (mergedimage.png, a thumbnail) larger than this uncompressed is refused.
MAX_MEMBER_BYTES = 1 << 30
#: A member that inflates more than this many times its stored size is treated as a zip bomb.
#: PNG data inside .kra/.ora is already deflated, so real files sit near 1:1.
MAX_ZIP_RATIO = 200
#: EXIF larger than this is refused (a JPEG APP1 segment cannot exceed 64 KB; anything huge is hostile).
MAX_EXIF_BYTES = 1 << 20
#: JPEG DCT scaling keeps the long edge >= DRAFT_GAP x target (see the module docstring for why 1.0).
DRAFT_GAP = 1.0
#: Integer box reduction keeps the long edge >= REDUCE_GAP x target before the final filter.
REDUCE_GAP = 1.0
#: Rows per band when flattening/reducing alpha images: a few MB, so a band stays in cache.
_BAND_ROWS = 240

# MPO (multi-picture phone JPEGs) opens through the JPEG factory, so "JPEG" covers it.
# AVIF and JXL only where formats.classify says this installation decodes them.
_RASTER_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "DIB", "GIF", "AVIF", "JXL")
_ZIP_MEMBERS: dict[FileKind, tuple[str, ...]] = {
    FileKind.KRA: ("mergedimage.png",),
    FileKind.ORA: ("mergedimage.png",),
    FileKind.PROCREATE: ("QuickLook/Thumbnail.png", "QuickLook/Thumbnail.jpg"),
}

_heif_registered = False


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


def _fail(path: Path, why: str) -> ImageError:
    # One line, always: the message is shown as-is on the order.
    return ImageError(f"{path.name}: {' '.join(why.split())}")


def _check_container(path: Path, kind: FileKind, fh: IO[bytes], size: int) -> str:
    """Refuse empty files, contents that do not match the kind, and polyglots; return the sniffed type."""
    if size == 0:
        raise _fail(path, "the file is empty (0 bytes)")
    head = fh.read(64)
    found = sniff(head)
    expected = _EXPECTED[kind]
    if found not in expected:
        if found in _EXPECTED[FileKind.RASTER] or found in ("psd", "heif"):
            what = f"a {found.upper()} image"
        else:
            what = _DESCRIBE.get(found or "", "not a recognised image")
        raise _fail(path, f"is {what}, not a {kind.value.upper()} file as its name says")
    if found != "zip" and _has_zip_tail(fh, size):
        raise _fail(path, f"is a {found} image with a ZIP archive appended (a polyglot file); refused")
    fh.seek(0)
    return found  # type: ignore[return-value]


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
        raise _fail(path, f"is a decompression bomb ({exc})") from exc
    except MemoryError as exc:
        raise _fail(path, "needs more memory to decode than is available") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
            zipfile.BadZipFile, ZeroDivisionError, OverflowError, NotImplementedError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason or isinstance(exc, EOFError):
            reason = f"truncated or cut off while copying ({reason})"
        raise _fail(path, f"cannot be decoded: {reason}") from exc


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise _fail(path, f"declares an impossible size {w}x{h}")
    if w * h > max_pixels:
        raise _fail(
            path,
            f"is {w}x{h} = {w * h / 1e6:.0f} Mpx, over the {max_pixels / 1e6:.0f} Mpx limit "
            "(decompression bomb guard; raise max_pixels if this is a real artwork)",
        )


def _read_zip_member(path: Path, kind: FileKind, max_bytes: int) -> tuple[str, bytes]:
    """Read the preview member of a .kra/.ora/.procreate into memory, with size and ratio caps.

    Nothing is extracted to disk and members are looked up by exact name, so hostile member names
    (``../../x``, absolute paths) can never matter.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {info.filename: info for info in zf.infolist()}
            for name in _ZIP_MEMBERS[kind]:
                info = infos.get(name)
                if info is None:
                    continue
                if info.flag_bits & 0x1:
                    raise _fail(path, f"{name} inside the archive is encrypted")
                if info.file_size > max_bytes:
                    raise _fail(path, f"{name} inside the archive is {info.file_size} bytes, over the cap")
                if info.file_size > 1 << 20 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                    raise _fail(path, f"{name} inside the archive inflates suspiciously (a zip bomb?)")
                with zf.open(info) as member:
                    # Read at most cap+1 bytes: the header's size may lie.
                    data = member.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise _fail(path, f"{name} inside the archive is larger than it claims")
                return name, data
    except zipfile.BadZipFile as exc:
        raise _fail(path, f"is not a readable ZIP archive ({exc})") from exc
    wanted = " or ".join(_ZIP_MEMBERS[kind])
    hint = "save it once more with Krita" if kind is FileKind.KRA else "re-export it"
    raise _fail(path, f"holds no {wanted} ({hint})")


def _ensure_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    try:
        import pillow_heif
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImageError("HEIC support is not installed", hint="pip install 'kaalwatch[heif]'") from exc
    pillow_heif.register_heif_opener()
    _heif_registered = True


def psd_has_composite(fh: IO[bytes]) -> bool:
    """True unless the PSD says (image resource 1057) that it stores no real merged image.

    Photoshop with "maximize compatibility" off still writes an image-data section, but a blank one;
    the version-info resource's ``hasRealMergedData`` byte tells the two apart.
    """
    fh.seek(0)
    header = fh.read(26)
    if len(header) < 26 or header[:4] != b"8BPS":
        return False
    (color_len,) = struct.unpack(">I", fh.read(4))
    fh.seek(color_len, io.SEEK_CUR)
    (res_len,) = struct.unpack(">I", fh.read(4))
    end = fh.tell() + res_len
    while fh.tell() + 12 <= end:
        if fh.read(4) != b"8BIM":
            break
        (res_id,) = struct.unpack(">H", fh.read(2))
        name_len = fh.read(1)[0]
        fh.seek(name_len + ((name_len + 1) % 2), io.SEEK_CUR)  # Pascal string padded to even length
        (size,) = struct.unpack(">I", fh.read(4))
        if res_id == 1057 and size >= 5:
            return fh.read(5)[4] != 0
        fh.seek(size + (size % 2), io.SEEK_CUR)
    return True


def _open_psd_tools(path: Path, max_pixels: int) -> Image.Image:
    """Compose the layers with psd-tools (optional extra): PSB, 16-bit, or no stored composite."""
    try:
        from psd_tools import PSDImage
    except ImportError as exc:
        raise _fail(
            path,
            "stores no usable composite image and psd-tools is not installed "
            "(pip install 'kaalwatch[psd]', or save with Maximize Compatibility on)",
        ) from exc
    try:
        with warnings.catch_warnings():
            # psd-tools replaces channels it cannot decompress with black and only warns: for us a
            # broken channel is a broken file (truncation must never pass the stability check).
            warnings.filterwarnings("error", module=r"psd_tools")
            psd = PSDImage.open(path)
            _check_pixels(path, (psd.width, psd.height), max_pixels)
            image = psd.composite()
    except ImageError:
        raise
    except Exception as exc:  # a third-party parser: any failure of it means "cannot be decoded"
        raise _fail(path, f"cannot be decoded by psd-tools: {exc or type(exc).__name__}") from exc
    if image is None:
        raise _fail(path, "has no visible layers to compose")
    return image


def _open(path: Path, kind: FileKind, max_pixels: int, stack: contextlib.ExitStack) -> tuple[
        Image.Image, bool, str | None]:
    """Open (header only where possible) the pixels of ``path``; returns (image, low_res, note)."""
    size = path.stat().st_size
    fh = stack.enter_context(path.open("rb"))
    _check_container(path, kind, fh, size)
    if kind is FileKind.RASTER:
        im = Image.open(fh, formats=_RASTER_FORMATS)
    elif kind is FileKind.HEIC:
        _ensure_heif()
        im = Image.open(fh, formats=("HEIF", "AVIF"))
    elif kind is FileKind.PSD:
        if not psd_has_composite(fh):
            return _open_psd_tools(path, max_pixels), False, None
        fh.seek(0)
        try:
            im = Image.open(fh, formats=("PSD",))
        except (OSError, SyntaxError):
            # Pillow reads 8-bit PSD only; PSB and 16/32-bit documents need psd-tools.
            return _open_psd_tools(path, max_pixels), False, None
    else:
        _name, data = _read_zip_member(path, kind, MAX_MEMBER_BYTES)
        im = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
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
        return im.point(lambda v: v * scale).convert("L")  # type: ignore[arg-type, operator]
    if mode in ("La", "RGBa"):
        return im.convert(mode.replace("a", "A"))
    return im.convert("RGB")  # YCbCr, LAB, HSV: rare in art files


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
    out = Image.new(premul, ((w + factor - 1) // factor, (h + factor - 1) // factor))
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
    out = Image.new("RGB", ((w + factor - 1) // factor, (h + factor - 1) // factor))
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


def decode(path: Path, target_edge: int | None, max_pixels: int = DEFAULT_MAX_PIXELS,
           kind: FileKind | None = None, background: tuple[int, int, int] | None = None,
           on_header: Callable[[tuple[int, int], int], None] | None = None) -> Decoded:
    """Decode ``path`` to a loaded image no smaller than needed for a ``target_edge`` px long edge.

    With ``background``, transparent images come back already flattened onto it (RGB), which is
    the cheap way to reduce them (see ``flatten_reduce``).

    ``target_edge=None`` decodes for verification only: as small as the format allows (JPEG at 1/8,
    which still runs the entropy decoder over every byte, so truncation is still caught).

    ``on_header(source_size, orientation)`` is called once the header has passed the pixel cap and before
    any pixel is decoded, so a caller can prepare work that needs only the size (the preview builds its
    watermark layer on another core meanwhile). The orientation is the EXIF one if the header has it.
    """
    kind = kind or classify(path)
    if kind is FileKind.OTHER:
        raise _fail(path, f"is a {path.suffix or 'suffix-less'} file, which is not decoded")
    with contextlib.ExitStack() as stack, _translate_errors(path):
        try:
            im, low_res, note = _open(path, kind, max_pixels, stack)
        except FileNotFoundError as exc:
            raise _fail(path, "disappeared before it could be read") from exc
        source_size = im.size
        _check_pixels(path, source_size, max_pixels)
        if on_header is not None:
            on_header(source_size, _orientation(im))
        if im.format in ("JPEG", "MPO"):
            long_edge = max(im.size)
            want = DRAFT_GAP * target_edge if target_edge else 1
            scale = next((s for s in (8, 4, 2) if long_edge / s >= want), 1)
            if scale > 1:
                im.draft(im.mode if im.mode in ("RGB", "L", "CMYK") else None,
                         (im.width // scale, im.height // scale))
        im.load()
        exif = im.info.get("exif")
        if isinstance(exif, bytes) and len(exif) > MAX_EXIF_BYTES:
            raise _fail(path, f"carries {len(exif)} bytes of EXIF, over the {MAX_EXIF_BYTES} byte cap")
        orientation = _orientation(im)
        icc = im.info.get("icc_profile") or None
        im = _normalise_mode(im)
        if target_edge:
            factor = reduce_factor(max(im.size), target_edge)
            if background is not None and im.mode in ("RGBA", "LA"):
                im = flatten_reduce(im, factor, background)
            else:
                im = reduce_image(im, factor)
        return Decoded(im, kind, source_size, orientation, icc, low_res, note)


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_expected_bytes(w: int, h: int, depth: int, colour: int, interlaced: bool) -> int:
    """Size of the filtered scanlines a complete PNG inflates to (one filter byte per row)."""
    bits = depth * _PNG_CHANNELS[colour]

    def rows_bytes(cols: int, rows: int) -> int:
        return rows * (1 + (cols * bits + 7) // 8) if cols and rows else 0

    if not interlaced:
        return rows_bytes(w, h)
    return sum(rows_bytes((w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy) for x0, y0, dx, dy in _ADAM7)


def verify_png_stream(path: Path, fh: IO[bytes], max_pixels: int) -> None:
    """Check a PNG completely in constant memory: chunk CRCs, and an IDAT stream that inflates to
    exactly the size its header implies and ends properly. No pixels are reconstructed (no unfiltering,
    no image buffer), so a 8000 x 8000 PNG costs its inflate time and a megabyte of memory instead of a
    256 MB decode -- this runs in the watcher's stability check, not in a worker.
    """
    fh.seek(8)
    inflater = zlib.decompressobj()
    expected = produced = -1
    seen_idat = ended = False
    while not ended:
        header = fh.read(8)
        if len(header) < 8:
            raise _fail(path, "is truncated (cut off before its end chunk)")
        length, ctype = struct.unpack(">I4s", header)
        if length > 0x7FFFFFFF:
            raise _fail(path, "cannot be decoded: a chunk length is impossible")
        crc = zlib.crc32(ctype)
        if ctype == b"IHDR":
            data = fh.read(length)
            crc = zlib.crc32(data, crc)
            if length != 13:
                raise _fail(path, "cannot be decoded: broken IHDR header")
            w, h, depth, colour, _comp, _filt, interlace = struct.unpack(">IIBBBBB", data)
            _check_pixels(path, (w, h), max_pixels)
            if depth not in _PNG_DEPTHS.get(colour, ()):
                raise _fail(path, f"cannot be decoded: bit depth {depth} with colour type {colour}")
            expected, produced = _png_expected_bytes(w, h, depth, colour, interlace == 1), 0
        elif ctype == b"IDAT":
            if expected < 0:
                raise _fail(path, "cannot be decoded: image data before the IHDR header")
            seen_idat = True
            remaining = length
            while remaining:
                data = fh.read(min(remaining, 1 << 20))
                if not data:
                    raise _fail(path, "is truncated (cut off inside its image data)")
                remaining -= len(data)
                crc = zlib.crc32(data, crc)
                try:
                    # Bounded output per call: memory stays constant whatever the stream claims.
                    while data:
                        produced += len(inflater.decompress(data, 1 << 20))
                        data = inflater.unconsumed_tail
                        if produced > expected:
                            raise _fail(path, "cannot be decoded: more image data than its size allows")
                except zlib.error as exc:
                    raise _fail(path, f"cannot be decoded: corrupt image data ({exc})") from exc
        else:
            if ctype == b"eXIf" and length > MAX_EXIF_BYTES:
                raise _fail(path, f"carries {length} bytes of EXIF, over the {MAX_EXIF_BYTES} byte cap")
            remaining = length
            while remaining:
                data = fh.read(min(remaining, 1 << 20))
                if not data:
                    raise _fail(path, "is truncated (cut off inside a chunk)")
                remaining -= len(data)
                crc = zlib.crc32(data, crc)
            ended = ctype == b"IEND"
        stored = fh.read(4)
        if len(stored) < 4:
            raise _fail(path, "is truncated (cut off inside a chunk)")
        if struct.unpack(">I", stored)[0] != crc & 0xFFFFFFFF:
            raise _fail(path, f"cannot be decoded: {ctype.decode('latin-1')} chunk fails its checksum")
    if not seen_idat:
        raise _fail(path, "cannot be decoded: no image data")
    produced += len(inflater.flush())
    if not inflater.eof or produced != expected:
        raise _fail(path, f"is truncated (image data ends after {produced} of {expected} bytes)")


def verify_decodes(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileKind:
    """Check that ``path`` opens and decodes completely; return its kind, or raise ImageError.

    Cost, by kind:
    * PNG: a streaming check (``verify_png_stream``): every chunk CRC and the whole deflate stream,
      in constant memory and about 40-60 % of a full decode's time (no unfiltering, no image buffer).
      Truncation can only be found at the end of the stream, so every byte is read.
    * JPEG: decoded at 1/8 scale: the entropy decoder still walks every byte (so truncation is
      caught) but almost no IDCT work and a 1/64-size buffer.
    * TIFF, WebP, BMP, PSD, HEIC, and the mergedimage.png of .kra/.ora (decoded from memory): a full
      decode, i.e. about one preview's worth of work and memory, once per stable file.
    * OTHER kinds are not decoded (there is nothing to decode) and return OTHER at once.
    """
    kind = classify(path)
    if kind is FileKind.OTHER:
        if not path.is_file():
            raise _fail(path, "is not a readable file")
        return kind
    if kind is FileKind.RASTER:
        try:
            fh = path.open("rb")
        except FileNotFoundError as exc:
            raise _fail(path, "disappeared before it could be read") from exc
        with fh, _translate_errors(path):
            found = _check_container(path, kind, fh, os.fstat(fh.fileno()).st_size)
            if found == "png":
                verify_png_stream(path, fh, max_pixels)
                return kind
    decode(path, None, max_pixels, kind)
    return kind
