"""Is a saved file complete? One rule per format, read from the file's structure, never from its pixels.

A file that passes its quiet period can still be half-written: a writer that stalled longer than the quiet
time, an interrupted sync, an in-place save that rewrote only the first half. Every format that has a
cheap structural proof of its end gets one here (a trailer, a length field, a central directory), so such
a file is "still being written", never a version. Formats kaalwatch cannot decode get no pixel check at
all, so the watcher also waits longer for them (``watcher.closed_quiet_seconds``).

The table ``RULES`` is the whole policy: suffix → (check, whether kaalwatch decodes the pixels). A check
reads at most a few header and trailer blocks (ZIP: the central directory) and returns ``None`` when the
file is complete, else a short reason ("ends without its IEND chunk"). It never raises on hostile bytes.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

Check = Callable[[BinaryIO, int], str | None]

#: Bytes read from the end of a file to find a trailer (PDF allows junk after %%EOF; 1 KiB is its rule).
_TAIL = 1024


def _tail(fh: BinaryIO, size: int, n: int = _TAIL) -> bytes:
    fh.seek(max(0, size - n))
    return fh.read(n)


def _head(fh: BinaryIO, n: int) -> bytes:
    fh.seek(0)
    return fh.read(n)


def png_end(fh: BinaryIO, size: int) -> str | None:
    """The last 12 bytes are the IEND chunk (fixed length 0, fixed CRC): cheap, and Pillow forgives its absence."""
    return None if _tail(fh, size, 12) == b"\x00\x00\x00\x00IEND\xaeB`\x82" else "ends without its IEND chunk"


def jpeg_end(fh: BinaryIO, size: int) -> str | None:
    """A JPEG ends with its EOI marker (some writers pad with zero bytes after it).

    Phones append data after the image's own EOI: Google and Samsung motion photos an MP4, Samsung a SEFT
    trailer. So a file that does not end with EOI is walked (segments, then entropy-coded scans) to the first
    image's EOI; an MP4 behind it must be whole (its boxes tile the rest), any other trailer is accepted.
    """
    tail = _tail(fh, size).rstrip(b"\x00")
    if tail.endswith(b"\xff\xd9"):
        return None
    fh.seek(0)
    data = fh.read()
    end = _jpeg_image_end(data)
    if end is None:
        return "ends without its end-of-image marker"
    if data[end + 4:end + 8] == b"ftyp":
        return _boxes_tile(data, end)
    return None


#: Markers that stand alone (no length field): TEM and the restart markers RST0–RST7.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg_image_end(data: bytes) -> int | None:
    """Offset just past the first image's EOI marker, or None when the image is cut off before it."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, size, in_scan = 2, len(data), False
    while pos + 1 < size:
        if in_scan:  # entropy-coded data: 0xFF is stuffed (FF00) or starts a restart or the next marker
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= size:
                return None
            following = data[pos + 1]
            if following == 0x00 or following == 0xFF or following in _STANDALONE:
                pos += 1 if following == 0xFF else 2
                continue
            in_scan = False
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:
            return pos + 2
        elif marker in _STANDALONE:
            pos += 2
        else:
            if pos + 4 > size:
                return None
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            if length < 2:
                return None
            pos += 2 + length
            in_scan = marker == 0xDA  # start of scan: its compressed data follows the header
    return None


def _boxes_tile(data: bytes, start: int) -> str | None:
    """ISO BMFF boxes from ``start`` fill ``data`` exactly (an MP4 appended to a photo is whole)."""
    pos, size = start, len(data)
    while pos < size:
        if pos + 8 > size:
            return "is cut off inside its appended video"
        length = int.from_bytes(data[pos:pos + 4], "big")
        if length == 1:
            if pos + 16 > size:
                return "is cut off inside its appended video"
            length = int.from_bytes(data[pos + 8:pos + 16], "big")
        elif length == 0:
            return None
        if length < 8:
            return "has a broken box in its appended video"
        pos += length
    return None if pos == size else "is cut off inside its appended video"


def gif_end(fh: BinaryIO, size: int) -> str | None:
    return None if _tail(fh, size, 1) == b";" else "ends without its trailer byte"


def riff_length(fh: BinaryIO, size: int) -> str | None:
    """WebP: the RIFF header declares the file's length."""
    head = _head(fh, 12)
    if len(head) < 12 or head[:4] != b"RIFF":
        return "has no RIFF header"
    declared = 8 + struct.unpack_from("<I", head, 4)[0]
    return None if size >= declared else f"is {size} of its declared {declared} bytes"


def bmp_length(fh: BinaryIO, size: int) -> str | None:
    head = _head(fh, 6)
    if len(head) < 6 or head[:2] != b"BM":
        return "has no BMP header"
    declared = struct.unpack_from("<I", head, 2)[0]
    return None if declared == 0 or size >= declared else f"is {size} of its declared {declared} bytes"


def tiff_lengths(fh: BinaryIO, size: int) -> str | None:
    """Every image of a TIFF (layered TIFFs hold several) has its strips or tiles inside the file."""
    head = _head(fh, 8)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return "has no TIFF header"
    end = "<" if head[:2] == b"II" else ">"
    if struct.unpack_from(end + "H", head, 2)[0] == 43:
        return None  # BigTIFF: no cheap check (rare in art tools), decoding catches truncation
    offset = struct.unpack_from(end + "I", head, 4)[0]
    for _ in range(1000):  # a loop of IFDs in a hostile file must end
        if offset == 0:
            return None
        if offset + 2 > size:
            return "is cut off before one of its images"
        fh.seek(offset)
        (count,) = struct.unpack(end + "H", fh.read(2))
        table = fh.read(count * 12 + 4)
        if len(table) < count * 12 + 4:
            return "is cut off inside an image directory"
        tags: dict[int, list[int]] = {}
        for i in range(count):
            tag, kind, n, value = struct.unpack_from(end + "HHI4s", table, i * 12)
            width = _TIFF_WIDTHS.get(kind, 1) * n
            if width > 4 and struct.unpack(end + "I", value)[0] + width > size:
                return "is cut off inside a tag's value"
            if tag in (273, 279, 324, 325):  # strip/tile offsets and byte counts
                tags[tag] = _tiff_values(fh, end, kind, n, value, size)
        for offsets, counts in ((273, 279), (324, 325)):
            ends = [o + c for o, c in zip(tags.get(offsets, []), tags.get(counts, []), strict=False)]
            if ends and max(ends) > size:
                return f"is {size} of the {max(ends)} bytes its image data needs"
        offset = struct.unpack_from(end + "I", table, count * 12)[0]
    return "has too many image directories"


#: Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, … IFD8).
_TIFF_WIDTHS = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def _tiff_values(fh: BinaryIO, end: str, kind: int, n: int, value: bytes, size: int) -> list[int]:
    fmt = {3: "H", 4: "I"}.get(kind)
    if fmt is None or n > 1_000_000:
        return []
    width = struct.calcsize(fmt)
    if n * width <= 4:
        data = value[: n * width]
    else:
        at = struct.unpack(end + "I", value)[0]
        if at + n * width > size:
            return [size + 1]  # the table itself is beyond the end
        fh.seek(at)
        data = fh.read(n * width)
    return list(struct.unpack(f"{end}{len(data) // width}{fmt}", data))


def psd_lengths(fh: BinaryIO, size: int) -> str | None:
    """PSD/PSB: every section length, then the merged image's raw or RLE length, fits the file exactly."""
    head = _head(fh, 26)
    if len(head) < 26 or head[:4] != b"8BPS":
        return "has no PSD header"
    version, channels, height, width, depth = struct.unpack_from(">H6xHIIH", head, 4)
    big = version == 2
    pos = 26
    for width_of_length in (4, 4, 8 if big else 4):  # colour mode data, image resources, layers and masks
        fh.seek(pos)
        raw = fh.read(width_of_length)
        if len(raw) < width_of_length:
            return "is cut off before its image data"
        pos += width_of_length + int.from_bytes(raw, "big")
    fh.seek(pos)
    raw = fh.read(2)
    if len(raw) < 2:
        return "is cut off before its image data"
    compression = struct.unpack(">H", raw)[0]
    rows = channels * height
    if compression == 0:
        need = pos + 2 + rows * ((width * depth + 7) // 8)
    elif compression == 1:
        count_width = 4 if big else 2
        counts = fh.read(rows * count_width)
        if len(counts) < rows * count_width:
            return "is cut off inside its image data"
        need = pos + 2 + len(counts) + sum(struct.unpack(f">{rows}{'I' if big else 'H'}", counts))
    else:
        return None  # ZIP-compressed image data (rare): no cheap length, decoding checks it
    return None if size >= need else f"is {size} of the {need} bytes its image data needs"


def zip_directory(fh: BinaryIO, size: int) -> str | None:
    """.kra/.ora/.procreate and other ZIP containers: a central directory at the end whose every member
    lies before it (a container written member by member only gets its directory last)."""
    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            start = zf.start_dir
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
        return "has no complete ZIP directory yet"
    if not infos:
        return "is an empty ZIP archive"
    for info in infos:
        if info.header_offset + 30 + info.compress_size > start:
            return "has a ZIP member that runs past its directory"
    return None


def clip_chunks(fh: BinaryIO, size: int) -> str | None:
    """Clip Studio: ``CSFCHUNK`` declares the file length; chunks (8-byte tag, 8-byte length) end with CHNKFoot."""
    head = _head(fh, 24)
    if len(head) < 24 or head[:8] != b"CSFCHUNK":
        return "has no Clip Studio header"
    declared, pos = struct.unpack_from(">QQ", head, 8)
    if size < declared:
        return f"is {size} of its declared {declared} bytes"
    for _ in range(100_000):
        fh.seek(pos)
        chunk = fh.read(16)
        if len(chunk) < 16:
            return "is cut off before its footer chunk"
        tag, length = chunk[:8], struct.unpack_from(">Q", chunk, 8)[0]
        pos += 16 + length
        if tag == b"CHNKFoot":
            return None if pos <= size else "is cut off inside its footer chunk"
        if not tag.startswith(b"CHNK") or pos > size:
            return "is cut off inside a chunk"
    return "has too many chunks"


def bmff_boxes(fh: BinaryIO, size: int) -> str | None:
    """AVIF/HEIC/JPEG XL containers (ISO base media boxes): the top-level boxes tile the file exactly."""
    pos = 0
    for _ in range(100_000):
        if pos == size:
            return None
        fh.seek(pos)
        head = fh.read(16)
        if len(head) < 8:
            return "is cut off inside a box header"
        length = struct.unpack_from(">I", head)[0]
        if length == 1:
            if len(head) < 16:
                return "is cut off inside a box header"
            length = struct.unpack_from(">Q", head, 8)[0]
        elif length == 0:
            return None  # "to the end of the file": nothing to compare
        if length < 8:
            return "has a broken box"
        pos += length
        if pos > size:
            return f"is {size} of the {pos} bytes its boxes declare"
    return "has too many boxes"


def jxl_end(fh: BinaryIO, size: int) -> str | None:
    """JPEG XL: the container form is checked box by box; a bare codestream has no cheap end marker (its
    decoder, which kaalwatch runs when the plugin is installed, catches a cut one)."""
    head = _head(fh, 12)
    if head.startswith(b"\xff\x0a"):
        return None
    if head[4:8] == b"JXL ":
        return bmff_boxes(fh, size)
    return "is not a JPEG XL file"


def pdf_end(fh: BinaryIO, size: int) -> str | None:
    """PDF (and Illustrator's PDF-based .ai): ``%%EOF`` within the last kilobyte."""
    return None if b"%%EOF" in _tail(fh, size) else "ends without %%EOF"


def svg_end(fh: BinaryIO, size: int) -> str | None:
    return None if _tail(fh, size).rstrip().lower().endswith(b"</svg>") else "ends without </svg>"


def no_check(fh: BinaryIO, size: int) -> str | None:
    """No structure known (Affinity, SAI, GIMP's XCF, …): only the longer quiet time protects it."""
    return None


@dataclass(frozen=True)
class Rule:
    check: Check
    decoded: bool  # kaalwatch decodes its pixels (a broken file is also caught by decoding)


#: The completeness rule of every format the watcher versions (suffix → rule); anything else: ``DEFAULT``.
RULES: dict[str, Rule] = {
    **dict.fromkeys((".png",), Rule(png_end, True)),
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".jfif"), Rule(jpeg_end, True)),
    **dict.fromkeys((".tif", ".tiff"), Rule(tiff_lengths, True)),
    **dict.fromkeys((".psd", ".psb"), Rule(psd_lengths, True)),
    ".webp": Rule(riff_length, True),
    ".bmp": Rule(bmp_length, True),
    ".gif": Rule(gif_end, True),
    **dict.fromkeys((".kra", ".ora", ".procreate"), Rule(zip_directory, True)),
    ".avif": Rule(bmff_boxes, True),
    ".jxl": Rule(jxl_end, True),
    **dict.fromkeys((".heic", ".heif", ".hif"), Rule(bmff_boxes, True)),
    ".clip": Rule(clip_chunks, False),
    **dict.fromkeys((".pdf", ".ai"), Rule(pdf_end, False)),
    ".svg": Rule(svg_end, False),
    # Affinity (.af of Affinity 3, .afphoto/.afdesign of v2), SAI, MediBang, Photo Paint, Pixelmator, GIMP:
    # closed or without a known end marker.
    **dict.fromkeys((".af", ".afphoto", ".afdesign", ".sai", ".sai2", ".mdp", ".pdn", ".pxd", ".xcf", ".csp"),
                    Rule(no_check, False)),
}
DEFAULT = Rule(no_check, False)


def rule_for(path: Path | str) -> Rule:
    return RULES.get(Path(path).suffix.lower(), DEFAULT)


def incomplete(path: Path) -> str | None:
    """Why ``path`` is not a complete file yet (one short phrase), or None when its format says it is."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                return "is empty"
            return rule_for(path).check(fh, size)
    except FileNotFoundError:
        return "disappeared"
    except (OSError, struct.error, ValueError, OverflowError) as exc:
        return f"cannot be read ({exc.__class__.__name__})"


__all__ = ["DEFAULT", "RULES", "Rule", "incomplete", "rule_for"]
