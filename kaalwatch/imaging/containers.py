"""Get at the picture inside a container: the preview member of a ZIP document (Krita, OpenRaster,
Procreate), a PSD's stored composite or psd-tools' composition of its layers, and the HEIF opener.

Each reader keeps the caps of ``limits``: a ZIP member is refused on its declared size and compression
ratio before a byte is inflated, and read as a stream that cannot yield more than that size; a document
psd-tools composes is checked against the pixel cap on its header.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zipfile
from pathlib import Path
from typing import IO

from PIL import Image

from kaalwatch.errors import ImageError
from kaalwatch.imaging.formats import FileKind
from kaalwatch.imaging.limits import MAX_MEMBER_BYTES, MAX_ZIP_RATIO, check_pixels, fail

#: The member that holds each ZIP document's picture, best first.
ZIP_MEMBERS: dict[FileKind, tuple[str, ...]] = {
    FileKind.KRA: ("mergedimage.png",),
    FileKind.ORA: ("mergedimage.png",),
    FileKind.PROCREATE: ("QuickLook/Thumbnail.png", "QuickLook/Thumbnail.jpg"),
}

_heif_registered = False


def open_zip_member(path: Path, kind: FileKind, stack: contextlib.ExitStack,
                    max_bytes: int = MAX_MEMBER_BYTES) -> IO[bytes]:
    """The preview member of a .kra/.ora/.procreate as a stream that lives as long as ``stack``.

    Streamed, not read into memory: the decoder inflates the PNG as it goes, so a worker holds the decoded
    image and not also the whole compressed member beside it. The caps still hold: the member's declared
    size and ratio are checked before any byte is inflated, and ``zipfile`` never yields more than the
    declared size (a member whose bytes differ from what its directory entry says fails its CRC check).
    Nothing is extracted to disk and members are looked up by exact name, so hostile member names
    (``../../x``, absolute paths) can never matter.
    """
    try:
        zf = stack.enter_context(zipfile.ZipFile(path))
        infos = {info.filename: info for info in zf.infolist()}
        for name in ZIP_MEMBERS[kind]:
            info = infos.get(name)
            if info is None:
                continue
            if info.flag_bits & 0x1:
                raise fail(path, f"{name} inside the archive is encrypted")
            if info.file_size > max_bytes:
                raise fail(path, f"{name} inside the archive is {info.file_size} bytes, over the cap")
            if info.file_size > 1 << 20 and info.file_size > MAX_ZIP_RATIO * max(info.compress_size, 1):
                raise fail(path, f"{name} inside the archive inflates suspiciously (a zip bomb?)")
            return stack.enter_context(zf.open(info))
    except zipfile.BadZipFile as exc:
        raise fail(path, f"is not a readable ZIP archive ({exc})") from exc
    wanted = " or ".join(ZIP_MEMBERS[kind])
    hint = "save it once more with Krita" if kind is FileKind.KRA else "re-export it"
    raise fail(path, f"holds no {wanted} ({hint})")


def ensure_heif() -> None:
    """Register pillow-heif's opener once (the optional ``heif`` extra)."""
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


def compose_psd(path: Path, max_pixels: int) -> Image.Image:
    """Compose the layers with psd-tools (the optional ``psd`` extra): PSB, 16-bit, or no stored composite."""
    try:
        from psd_tools import PSDImage
    except ImportError as exc:
        raise fail(
            path,
            "stores no usable composite image and psd-tools is not installed "
            "(pip install 'kaalwatch[psd]', or save with Maximize Compatibility on)",
        ) from exc
    try:
        with warnings.catch_warnings():
            # psd-tools replaces channels it cannot decompress with black and only warns: for us a
            # broken channel is a broken file (a truncated document must never become a version).
            warnings.filterwarnings("error", module=r"psd_tools")
            psd = PSDImage.open(path)
            check_pixels(path, (psd.width, psd.height), max_pixels)
            image = psd.composite()
    except ImageError:
        raise
    except Exception as exc:  # a third-party parser: any failure of it means "cannot be decoded"
        raise fail(path, f"cannot be decoded by psd-tools: {exc or type(exc).__name__}") from exc
    if image is None:
        raise fail(path, "has no visible layers to compose")
    return image
