"""Encode an image as one baseline JPEG, band by band, as its rows become final.

Why: a preview used to be encoded only once every row of it was resampled and watermarked, so the
encode (3.5-4.5 ms for a 1600 px preview at q85 on the 2-core bench machine, 2026-11-30) came after the
whole decode. A baseline JPEG can be cut into independent pieces with *restart markers*: at each one the
encoder pads its bits to a byte and the decoder resets its DC predictions, so what lies between two
markers depends on those rows alone. That is also exactly what an encoder writes for a separate image of
those rows, ended at its EOI. So each band of rows is encoded on its own, with the same quality and
subsampling, as soon as it is final (``jpeg_rows`` hands them over while the later rows still decode,
from either of its two threads, in any order), and the pieces are joined in order under one header
that says how tall the whole image is and how many MCUs lie between two markers (the DRI segment).

The joined file decodes to exactly the pixels of a single encode of the whole image: the same tables
(libjpeg's standard Huffman tables; the quantisation tables follow from the quality), the same 8x8
blocks (bands are whole MCU rows: 16 rows at 4:2:0), the same chroma downsampling inside each block, and
the same padding of the last MCU row, which only the last band has. ``tests/imaging/test_jpeg_bands.py``
checks that pixel for pixel. The cost is two or three bytes per band and a few tens of microseconds for
each band's own header, which is thrown away.
"""

from __future__ import annotations

import io
import threading

from PIL import Image

#: Rows of an MCU at 4:2:0 chroma subsampling, which is what the previews use.
MCU_ROWS = 16
#: The chroma subsampling passed to Pillow: 4:2:0 (Pillow's default for RGB, made explicit because the
#: bands' MCU height depends on it).
SUBSAMPLING = 2
_SOI, _EOI, _SOS, _SOF0, _DRI = 0xD8, 0xD9, 0xDA, 0xC0, 0xDD


class BandEncoder:
    """Takes an RGB or L image's rows in bands and returns the whole JPEG at ``finish``.

    The bands are the rows ``[k * band_rows, (k + 1) * band_rows)``, the last one shorter if the height
    says so; ``band_rows`` is a multiple of ``MCU_ROWS`` and the restart interval is one band. Bands may
    come in any order and from several threads at once: each is encoded on its own, and only ``finish``
    puts them in order.
    """

    def __init__(self, size: tuple[int, int], quality: int, band_rows: int, mode: str = "RGB") -> None:
        width, height = size
        if band_rows < MCU_ROWS or band_rows % MCU_ROWS:
            raise ValueError(f"bands must be a multiple of {MCU_ROWS} rows, not {band_rows}")
        if not (1 <= width <= 65535 and 1 <= height <= 65535):
            raise ValueError(f"a JPEG is 1..65535 px a side, not {width}x{height}")
        mcus = (band_rows // MCU_ROWS) * -(-width // MCU_ROWS) if mode == "RGB" else (band_rows // 8) * -(-width // 8)
        if mcus > 0xFFFF:
            raise ValueError(f"{band_rows} rows of {width} px is more than a restart interval can hold")
        self.size, self.quality, self.band_rows, self.mode = size, quality, band_rows, mode
        self._interval = mcus
        self._bands = -(-height // band_rows)
        self._lock = threading.Lock()
        self._pieces: dict[int, tuple[bytes, bytes]] = {}  # band index -> (its own header, its scan data)
        self._rows = 0

    @property
    def rows(self) -> int:
        """How many rows have been encoded so far."""
        with self._lock:
            return self._rows

    def add(self, band: Image.Image, top: int) -> None:
        """Encode the band whose first row is ``top``."""
        width, height = self.size
        if top % self.band_rows or not 0 <= top < height:
            raise ValueError(f"a band starts at a multiple of {self.band_rows} rows below {height}, not at {top}")
        if band.mode != self.mode or band.width != width:
            raise ValueError(f"a band must be {self.mode} and {width} px wide, not {band.mode} {band.width} px")
        expected = min(self.band_rows, height - top)
        if band.height != expected:
            raise ValueError(f"band at row {top} is {band.height} rows; expected {expected}")
        piece = _split(_encode(band, self.quality))  # outside the lock: two threads encode at once
        with self._lock:
            if top // self.band_rows in self._pieces:
                raise ValueError(f"the band at row {top} was added twice")
            self._pieces[top // self.band_rows] = piece
            self._rows += expected

    def finish(self) -> bytes:
        """The whole JPEG; every band must have been added."""
        with self._lock:
            if len(self._pieces) != self._bands:
                raise ValueError(f"{self._rows} of {self.size[1]} rows were encoded")
            pieces = [self._pieces[k] for k in range(self._bands)]
        header = _with_height(pieces[0][0], self.size[1])
        if self._bands > 1:
            header = _with_restart_interval(header, self._interval)
        # RSTn before every band but the first, n counting 0..7 round
        scans = [data if k == 0 else bytes((0xFF, 0xD0 + (k - 1) % 8)) + data for k, (_, data) in enumerate(pieces)]
        return b"".join([header, *scans, bytes((0xFF, _EOI))])


def encode(im: Image.Image, quality: int, band_rows: int = 64) -> bytes:
    """``im`` as a JPEG encoded band by band (what ``BandEncoder`` joins; for tests and whole images)."""
    encoder = BandEncoder(im.size, quality, band_rows, im.mode)
    for top in range(0, im.height, band_rows):
        encoder.add(im.crop((0, top, im.width, min(im.height, top + band_rows))), top)
    return encoder.finish()


def _encode(im: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    if im.mode == "RGB":
        im.save(out, "JPEG", quality=quality, subsampling=SUBSAMPLING)
    else:
        im.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _split(jpeg: bytes) -> tuple[bytes, bytes]:
    """(everything up to and including the SOS segment, the entropy-coded data before EOI)."""
    if jpeg[:2] != bytes((0xFF, _SOI)) or jpeg[-2:] != bytes((0xFF, _EOI)):
        raise ValueError("the encoder did not write a whole JPEG")
    pos = 2
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {pos}")
        marker = jpeg[pos + 1]
        length = int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if marker == _SOS:
            return jpeg[:end], jpeg[end:-2]
        if marker == _DRI:
            raise ValueError("the encoder wrote restart markers of its own")
        pos = end
    raise ValueError("the encoder wrote no scan")


def _segments(header: bytes) -> list[tuple[int, int]]:
    """(marker, offset) of each segment after SOI."""
    found, pos = [], 2
    while pos < len(header):
        found.append((header[pos + 1], pos))
        pos += 2 + int.from_bytes(header[pos + 2:pos + 4], "big")
    return found


def _with_height(header: bytes, height: int) -> bytes:
    """The header with the frame's (SOF0) height set to ``height``."""
    for marker, pos in _segments(header):
        if marker == _SOF0:
            at = pos + 5  # FF C0, length (2), precision (1), then the height
            return header[:at] + height.to_bytes(2, "big") + header[at + 2:]
    raise ValueError("the encoder wrote no baseline frame header")


def _with_restart_interval(header: bytes, mcus: int) -> bytes:
    """The header with a DRI segment (``mcus`` MCUs between markers) just before the scan's SOS."""
    sos = next(pos for marker, pos in _segments(header) if marker == _SOS)
    dri = bytes((0xFF, _DRI, 0, 4)) + mcus.to_bytes(2, "big")
    return header[:sos] + dri + header[sos:]
