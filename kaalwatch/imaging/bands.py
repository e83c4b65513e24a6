"""Decode a striped TIFF or a PSD composite band by band, on two cores, into its reduced image.

Why: a layered TIFF or PSD is the file an artist saves most, and its composite is the largest thing a
preview decodes. Pillow decodes it whole (one thread, the full-size image in memory, and for a TIFF a
memory map of the file whose touched pages count in the worker's RSS), and only then can it be reduced.
Both formats store the composite in independent pieces: a TIFF in strips of rows, each compressed on
its own, and a PSD in rows, each PackBits-compressed on its own, one channel after the other. So a band
of rows can be decoded alone: its compressed bytes are read (``os.pread``, no shared file position)
and wrapped in a minimal container of the same format, which Pillow decodes like any file of that
format. The decoders release the GIL, so two threads decode alternate bands on two cores, each band is
reduced (and flattened onto the background) as soon as it is decoded, and no full-size image exists.

Measured 2026-11-29 (7 runs, one process, medians), decode plus the integer reduction the preview needs:
4000x3000 LZW TIFF 168 ms whole, 82 ms in bands on two threads; 3000x4000 PSD 169 -> 66 ms;
6000x6000 PSD 533 -> 193 ms; 6000x6000 TIFF 483 -> 264 ms. The pixels are identical to the whole decode
followed by the same reduction (the tests compare them on every layout this module accepts).

Only layouts whose pieces are plain and independent take this path (``band_reader`` returns None for
the rest, which Pillow decodes whole as before): TIFF with strips (not tiles), one plane, 8 or 16 bits
per sample, no compression, LZW, Deflate or PackBits (with or without the horizontal predictor), grey,
RGB, RGB with alpha or CMYK, at least two bands; PSD (not PSB) in 8-bit greyscale, RGB, CMYK or Lab, raw
or RLE, of which the channels Pillow reads are decoded. Nothing else changes: the header checks, the pixel
cap, the orientation and the colour profile still come from the file as Pillow opened it.

Some PSDs are never left to Pillow (``_psd_reader``): an RLE composite with more channels than Pillow
reads (saved selections, spot colours), whose channels Pillow decodes from the wrong offsets, and an RGB
composite whose transparency is another channel than the one Pillow takes for it, or none.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image, ImageFile

#: Decoded bytes per band (Pillow's 4 bytes a pixel) a decode aims at. Bands that stay in the caches are
#: faster: for the 3000x4000 PSD 66 ms at 1 MB, 81 ms at 4 MB, 140 ms at 16 MB, and 78 ms at 256 KB,
#: where the work per band starts to count (same runs as above).
BAND_BYTES = 1 << 20

# TIFF tags read or written here.
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_FILL_ORDER, _OFFSETS, _SAMPLES, _ROWS, _COUNTS, _PLANAR = 266, 273, 277, 278, 279, 284
_PREDICTOR, _TILE_WIDTH, _EXTRA, _SAMPLE_FORMAT = 317, 322, 338, 339
#: None, LZW, Adobe Deflate, old Deflate, PackBits: each strip decodes alone (JPEG needs shared tables).
_TIFF_COMPRESSIONS = frozenset({1, 5, 8, 32946, 32773})
#: The compressions libtiff applies the horizontal predictor with (LZW and Deflate).
_PREDICTED = frozenset({5, 8, 32946})
#: (mode, photometric, samples): grey (min-is-black), RGB, RGB plus one alpha sample, CMYK (print work).
_TIFF_LAYOUTS = {("L", 1, 1), ("RGB", 2, 3), ("RGBA", 2, 4), ("CMYK", 5, 4)}
#: Colour samples of each mode; the rest of a pixel's samples are extra (alpha).
_COLOUR_SAMPLES = {"L": 1, "RGB": 3, "RGBA": 3, "CMYK": 4}
#: PSD colour modes this module re-wraps: PSD colour mode -> (mode, mode with alpha or None, colour channels).
_PSD_LAYOUTS = {1: ("L", None, 1), 3: ("RGB", "RGBA", 3), 4: ("CMYK", None, 4), 9: ("LAB", None, 3)}
#: Image resource 1053: one 4-byte identifier per extra channel of the composite; 0 is its transparency.
_ALPHA_IDENTIFIERS = 1053
#: An image resources section longer than this is not searched for the alpha identifiers.
_MAX_RESOURCE_BYTES = 16 << 20
#: The most channels a PSD may store (Adobe's file format specification).
_PSD_MAX_CHANNELS = 56


@dataclass(frozen=True)
class BandReader:
    """Decodes rows ``[top, bottom)`` of one image as stored (before any orientation); ``step`` divides
    every band's top (a strip's rows)."""

    size: tuple[int, int]
    step: int
    read: Callable[[int, int], Image.Image]
    #: Pillow's own decode of this file is wrong (see ``_psd_reader``): decode it here even as one band.
    pillow_misreads: bool = False


class _Truncated(OSError):
    """A piece of the composite lies past the end of the file."""


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    """The ``length`` bytes at ``offset``; a length the file cannot hold is refused before any buffer is
    allocated for it (a hostile strip size of 4 GB must cost nothing)."""
    if offset < 0 or length < 0 or offset + length > os.fstat(fd).st_size:
        raise _Truncated("image file is truncated (pixel data runs past the end of the file)")
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise _Truncated(f"image file is truncated ({length - len(data)} bytes of pixel data missing)")
    return data


def _loaded(container: bytes, mode: str) -> Image.Image:
    im = Image.open(io.BytesIO(container))
    im.load()
    if im.mode != mode:  # a layout this module misread: never paste other pixels than a whole decode gives
        raise ValueError(f"a band decoded as {im.mode}, not {mode}")
    return im


# ----------------------------------------------------------------------------------------------------
# TIFF


def _tiff_reader(im: Image.Image, fd: int) -> BandReader | None:
    tags = im.tag_v2  # type: ignore[attr-defined]
    # The strips' layout: Pillow's ``size`` is already upright for an orientation that swaps the sides.
    w, h = tags.get(_WIDTH), tags.get(_LENGTH)
    if not isinstance(w, int) or not isinstance(h, int) or {w, h} != set(im.size):
        return None
    samples = tags.get(_SAMPLES, 1)
    photometric = tags.get(_PHOTOMETRIC)
    compression = tags.get(_COMPRESSION, 1)
    bits = tags.get(_BITS, (1,))
    bits = bits if isinstance(bits, tuple) else (bits,)
    offsets, counts = tags.get(_OFFSETS), tags.get(_COUNTS)
    rows = tags.get(_ROWS, h)
    extra = tags.get(_EXTRA, ())
    extra = extra if isinstance(extra, tuple) else (extra,)
    predictor = tags.get(_PREDICTOR, 1)
    order = getattr(tags, "_endian", "<")  # 16-bit samples are stored in the file's byte order
    if (order not in ("<", ">") or (im.mode, photometric, samples) not in _TIFF_LAYOUTS or _TILE_WIDTH in tags
            or tags.get(_PLANAR, 1) != 1 or tags.get(_FILL_ORDER, 1) != 1
            or compression not in _TIFF_COMPRESSIONS or predictor not in (1, 2)
            or (predictor == 2 and compression not in _PREDICTED)
            or len(bits) != samples or set(bits) not in ({8}, {16})
            or set(tags.get(_SAMPLE_FORMAT, (1,)) or (1,)) != {1}
            or len(extra) != samples - _COLOUR_SAMPLES[im.mode]
            or not isinstance(rows, int) or not 0 < rows < h
            or not isinstance(offsets, tuple) or not isinstance(counts, tuple)
            or len(offsets) != len(counts) or len(offsets) != math.ceil(h / rows)):
        return None

    def read(top: int, bottom: int) -> Image.Image:
        first, last = top // rows, math.ceil(bottom / rows)
        pieces = [_pread_exact(fd, counts[i], offsets[i]) for i in range(first, last)]
        return _loaded(_tiff_container(w, bottom - top, rows, bits[0], samples, photometric, compression,
                                       predictor, extra, pieces, order), im.mode)

    return BandReader((w, h), rows, read)


def _tiff_container(width: int, height: int, rows: int, bits: int, samples: int, photometric: int,
                    compression: int, predictor: int, extra: tuple[int, ...], strips: list[bytes],
                    order: str) -> bytes:
    """A TIFF of one image ``width`` x ``height`` whose strips are ``strips`` as stored, in byte ``order``
    ("<" or ">", the original's: its samples and predictor work in it)."""
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value bytes (external if > 4)

    def short(tag: int, *values: int) -> None:
        entries.append((tag, 3, len(values), struct.pack(f"{order}{len(values)}H", *values)))

    def long(tag: int, *values: int) -> None:
        entries.append((tag, 4, len(values), struct.pack(f"{order}{len(values)}I", *values)))

    n = len(strips)
    entries_count = 10 + (predictor != 1) + bool(extra)
    external_at = 8 + 2 + 12 * entries_count + 4
    external_bytes = sum(size for size in (2 * samples, 4 * n, 4 * n, 2 * len(extra)) if size > 4)
    starts = list(itertools.accumulate((len(strip) for strip in strips[:-1]), initial=external_at + external_bytes))
    long(_WIDTH, width)
    long(_LENGTH, height)
    short(_BITS, *([bits] * samples))
    short(_COMPRESSION, compression)
    short(_PHOTOMETRIC, photometric)
    long(_OFFSETS, *starts)
    short(_SAMPLES, samples)
    long(_ROWS, rows)
    long(_COUNTS, *(len(strip) for strip in strips))
    short(_PLANAR, 1)
    if predictor != 1:
        short(_PREDICTOR, predictor)
    if extra:
        short(_EXTRA, *extra)
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    head = bytearray(magic + struct.pack(f"{order}IH", 8, len(entries)))
    external = bytearray()
    for tag, kind, count, value in sorted(entries):
        if len(value) <= 4:
            head += struct.pack(f"{order}HHI", tag, kind, count) + value.ljust(4, b"\x00")
        else:
            head += struct.pack(f"{order}HHII", tag, kind, count, external_at + len(external))
            external += value
    head += b"\x00\x00\x00\x00"
    if len(head) != external_at or len(external) != external_bytes:
        raise AssertionError("TIFF band container laid out wrongly")
    return bytes(head + external) + b"".join(strips)


# ----------------------------------------------------------------------------------------------------
# PSD


def _psd_transparency(fd: int, colour_channels: int, stored: int) -> int | None:
    """Which stored channel of an RGB composite is its transparency, if any, as Adobe's specification
    says (and psd-tools reads it): the first extra channel when the layer count is negative; else the
    one whose alpha identifier (image resource 1053) is 0; none when every extra channel has an
    identifier, or when there are layers (a layered document with an opaque background, whose extra
    channels are saved selections). A file with neither layers nor identifiers keeps Pillow's reading: a
    fourth channel is its alpha, a fifth or more leave it without one."""
    extra = stored - colour_channels
    if extra <= 0:
        return None
    colour_data = struct.unpack(">I", _pread_exact(fd, 4, 26))[0]
    resources_at = 30 + colour_data
    resources_length = struct.unpack(">I", _pread_exact(fd, 4, resources_at))[0]
    layers_at = resources_at + 4 + resources_length
    count = 0
    if struct.unpack(">I", _pread_exact(fd, 4, layers_at))[0] >= 6:
        info_length, count = struct.unpack(">Ih", _pread_exact(fd, 6, layers_at + 4))
        count = count if info_length >= 2 else 0
    if count < 0:
        return colour_channels
    identifiers = _psd_alpha_identifiers(fd, resources_at + 4, resources_length)
    if identifiers:
        first = stored - len(identifiers)
        return first + identifiers.index(0) if 0 in identifiers and first >= colour_channels else None
    if count > 0:
        return None
    return colour_channels if extra == 1 else None


def _psd_alpha_identifiers(fd: int, at: int, length: int) -> list[int] | None:
    """The alpha identifiers (image resource 1053) among the resources at ``at``, or None."""
    if length > _MAX_RESOURCE_BYTES:
        return None
    data = _pread_exact(fd, length, at)
    offset = 0
    while offset + 12 <= len(data) and data[offset:offset + 4] == b"8BIM":
        ident = struct.unpack_from(">H", data, offset + 4)[0]
        name = data[offset + 6]
        offset += 6 + (1 + name + 1) // 2 * 2  # the Pascal name, padded to an even length
        if offset + 4 > len(data):
            return None
        size = struct.unpack_from(">I", data, offset)[0]
        offset += 4
        if ident == _ALPHA_IDENTIFIERS:
            if size % 4 or offset + size > len(data):
                return None
            return list(struct.unpack_from(f">{size // 4}I", data, offset))
        offset += size + size % 2
    return None


def _psd_reader(im: ImageFile.ImageFile, fd: int) -> BandReader | None:
    """Bands of a PSD composite: its colour channels, and for RGB its transparency (``_psd_transparency``).

    A composite may store more channels than its colour ones: Photoshop keeps every saved selection and
    spot colour as one more channel, and a transparent document's transparency as the first of them.
    Pillow takes an RGB file's fourth channel for alpha whatever it is, so a saved selection in a
    layered document hid the artwork outside it. With more than four channels Pillow reads a PackBits
    composite's row-length table as if it covered only the channels it decodes, so it decodes every
    channel from the wrong offset (garbage, not an error). Here the table is read whole and the channels
    the specification names are decoded; a file Pillow would read otherwise gets ``pillow_misreads``
    and is never left to Pillow's whole decode.
    """
    w, h = im.size
    header = os.pread(fd, 26, 0)
    if len(header) != 26:
        return None
    version, stored, height, width, depth, colour = struct.unpack(">H6xHIIHH", header[4:26])
    tiles = im.tile
    read_by_pillow = len(tiles)  # the channels whose tiles Pillow set up
    if (version != 1 or depth != 8 or colour not in _PSD_LAYOUTS or im.mode not in _PSD_LAYOUTS[colour][:2]
            or not read_by_pillow <= stored <= _PSD_MAX_CHANNELS
            or (width, height) != (w, h) or h == 0
            or {t.codec_name for t in tiles} not in ({"raw"}, {"packbits"})
            or any(tuple(t.extents or ()) != (0, 0, w, h) for t in tiles)):
        return None
    mode, with_alpha, colour_channels = _PSD_LAYOUTS[colour]
    alpha = _psd_transparency(fd, colour_channels, stored) if with_alpha is not None else None
    if alpha is not None and with_alpha is not None:
        mode = with_alpha
    wanted = [*range(colour_channels), *([alpha] if alpha is not None else [])]
    data_at = tiles[0].offset
    if tiles[0].codec_name == "raw":
        if any(t.offset != data_at + c * w * h for c, t in enumerate(tiles)):
            return None

        def read_raw(top: int, bottom: int) -> Image.Image:
            pieces = [_pread_exact(fd, w * (bottom - top), data_at + c * w * h + top * w) for c in wanted]
            return _loaded(_psd_container(w, bottom - top, len(wanted), colour, 0, b"", pieces), mode)

        return BandReader((w, h), 1, read_raw, pillow_misreads=mode != im.mode)

    # The table of every stored channel's row lengths starts where Pillow's shorter one does.
    table_at = data_at - 2 * read_by_pillow * h
    data_at = table_at + 2 * stored * h
    table = _pread_exact(fd, 2 * stored * h, table_at)
    counts = struct.unpack(f">{stored * h}H", table)
    ends = [0]  # ends[i]: bytes of the rows before row-of-all-channels i
    for count in counts:
        ends.append(ends[-1] + count)
    if any(t.offset != table_at + 2 * read_by_pillow * h + ends[c * h] for c, t in enumerate(tiles)):
        return None

    def read_rle(top: int, bottom: int) -> Image.Image:
        rows = bottom - top
        band_table = b"".join(table[2 * (c * h + top):2 * (c * h + bottom)] for c in wanted)
        pieces = [_pread_exact(fd, ends[c * h + bottom] - ends[c * h + top], data_at + ends[c * h + top])
                  for c in wanted]
        return _loaded(_psd_container(w, rows, len(wanted), colour, 1, band_table, pieces), mode)

    return BandReader((w, h), 1, read_rle, pillow_misreads=mode != im.mode or stored > read_by_pillow)


def _psd_container(width: int, height: int, channels: int, colour: int, compression: int, table: bytes,
                   pieces: list[bytes]) -> bytes:
    """A PSD with no colour table, resources or layers whose composite is ``pieces`` (one per channel)."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, height, width, 8, colour)
    return header + bytes(12) + struct.pack(">H", compression) + table + b"".join(pieces)


# ----------------------------------------------------------------------------------------------------
# The reader and the banded decode


def band_reader(im: Image.Image, fd: int) -> BandReader | None:
    """A band reader for the not yet loaded ``im`` opened from ``fd``, or None to decode it whole."""
    if not isinstance(im, ImageFile.ImageFile) or not hasattr(os, "pread"):
        return None  # composed by psd-tools (already loaded), or a system without pread (Windows)
    try:
        if im.format == "TIFF":
            return _tiff_reader(im, fd)
        if im.format == "PSD":
            return _psd_reader(im, fd)
    except (struct.error, TypeError, ValueError, AttributeError):
        return None  # an odd header: Pillow's whole decode reports it as it would have
    return None


def band_rows(reader: BandReader, factor: int, band_bytes: int | None = None) -> int:
    """Rows per band: about ``band_bytes`` (default ``BAND_BYTES``) decoded, a multiple of the strip rows
    and of the reduction factor."""
    unit = math.lcm(reader.step, max(1, factor))
    wanted = max(1, (band_bytes or BAND_BYTES) // (4 * reader.size[0]))
    return max(unit, wanted // unit * unit)


def decode_in_bands(reader: BandReader, factor: int, finish: Callable[[Image.Image, int], Image.Image],
                    threads: int = 2, band_bytes: int | None = None) -> Image.Image | None:
    """Decode every band, apply ``finish(band, factor)`` (the reduction), and paste the results in place.

    Returns None when the image has fewer than two bands (nothing to gain: decode it whole). ``threads``
    threads take the next band in turn; an error in any is raised here once the others have stopped.
    """
    w, h = reader.size
    rows = band_rows(reader, factor, band_bytes)
    if rows >= h:
        return None
    tops: Iterator[int] = iter(range(0, h, rows))
    lock = threading.Lock()
    failed: list[BaseException] = []
    out: list[Image.Image] = []  # created by the first finished band, whose mode it takes
    out_size = ((w + factor - 1) // factor, (h + factor - 1) // factor)

    def run() -> None:
        while not failed:
            with lock:
                top = next(tops, None)
            if top is None:
                return
            try:
                part = finish(reader.read(top, min(h, top + rows)), factor)
                with lock:
                    if not out:
                        out.append(Image.new(part.mode, out_size, None))  # every row is pasted over
                    target = out[0]
                if part.mode != target.mode:
                    raise ValueError(f"bands came out as {part.mode} and {target.mode}")
                target.paste(part, (0, top // factor))
            except BaseException as exc:  # re-raised in the caller's thread below
                failed.append(exc)
                return

    helpers = [threading.Thread(target=run, name="kaalwatch-band") for _ in range(max(1, threads) - 1)]
    for helper in helpers:
        helper.start()
    run()
    for helper in helpers:
        helper.join()
    if failed:
        raise failed[0]
    return out[0]
