"""Decode a baseline JPEG and resample its finished rows on a second core while the later rows decode.

Why: a JPEG's preview is a DCT-scaled decode (``decode``'s draft) and then a final resample to the exact
preview size, and Pillow can do the second only once the first is over: the 6000x4000 JPEG of the
preview benchmark decoded in ~56 ms and resampled in another ~25 ms (two threads, 2026-11-29). A JPEG
cannot be decoded in independent bands as a TIFF's strips can (``bands``), but a baseline JPEG is decoded
top to bottom, and Pillow's decoder stops whenever its input runs out and resumes with the next bytes
(``ImageFile.load`` feeds it 64 KB at a time). So this module feeds the decoder itself, notes after each
piece how far the rows have got, and a second thread resamples each band of the output as soon as the
source rows under it (with its filter's reach) are decoded. The decoder and the resampler release the
GIL, so the resample runs on the other core and the preview is ready a few ms after the decode ends.
A caller may also pass a ``RowSink``: each band, once resampled, is handed to it by the thread that
resampled it (the preview burns its watermark into the band and encodes it there, on whichever core is
free: ``preview._StreamedPreview``).

How far the rows have got: Pillow keeps an RGB pixel in four bytes and its decoder writes 255 into the
fourth as it unpacks each row; the image it decodes into starts all zero (``Image.new`` with colour 0).
So a row is decoded once its last pixel's fourth byte (``tobytes("raw", "RGBX")``) is 255. Only the
decoding thread looks, between two feeds, when the decoder is not running; rows above the mark are
never written again. The image decoded into is not filled (the decoder writes every pixel), except its
last column, set to 0 and checked. If the mark were ever unreadable the bands would wait for the end of
the decode (correct, only not overlapped); if any row already looked decoded before any byte was fed,
this path is not taken at all.

Which JPEGs: baseline (not progressive: a progressive JPEG has no finished row before its last scan),
RGB (what artwork exports are; greyscale and CMYK are rare and decoded whole), one tile, and a preview
smaller than the decode. Everything else returns None and is decoded whole as before. The result is
that of Pillow's resize of the whole decode band by band, each band reading its exact source box (the
same as ``preview.resize_in_bands``): at most 1 apart from one resize of the whole image.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable
from typing import IO, Any

from PIL import Image, ImageFile

#: Output rows per band: few enough that the bands left when the decode ends are a short tail, many
#: enough that each band's own set-up (Pillow's filter weights, the rows its filter reads twice) does not
#: count. 16-256 rows measured within 2 ms of each other on the 2000-6000 px benchmark JPEGs, 64 at or
#: near the best on each (11 runs, 2026-11-29).
BAND_ROWS = 64
#: Bytes fed to the decoder at a time: Pillow's own ``ImageFile.decodermaxblock``.
BLOCK_BYTES = 1 << 16
#: How far (in source pixels per output pixel) each of Pillow's filters reaches from a pixel's centre.
_SUPPORT = {
    Image.Resampling.NEAREST: 0.5,
    Image.Resampling.BOX: 0.5,
    Image.Resampling.BILINEAR: 1.0,
    Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0,
    Image.Resampling.LANCZOS: 3.0,
}


#: Called with (the output image, top, bottom) once rows ``[top, bottom)`` of the output are final, by the
#: thread that resampled them: the bands come in any order, two at once (``decode_resampled``).
RowSink = Callable[[Image.Image, int, int], None]


def eligible(im: Image.Image, size: tuple[int, int]) -> bool:
    """True when ``im`` (opened, drafted, not loaded) is a JPEG this module decodes into ``size``."""
    if not (isinstance(im, ImageFile.ImageFile) and im.format in ("JPEG", "MPO") and im.mode == "RGB"):
        return False
    baseline = not im.info.get("progressive") and not im.info.get("progression")
    one_tile = len(im.tile) == 1 and im.tile[0][0] == "jpeg" and im.fp is not None
    smaller = size != im.size and size[0] <= im.width and size[1] <= im.height and min(size) >= 1
    return baseline and one_tile and smaller and hasattr(Image, "_getdecoder")


def source_rows(bottom: int, scale: float, height: int, resample: Image.Resampling) -> int:
    """How many source rows (from the top) output rows ``[.., bottom)`` read, at ``scale`` source rows per
    output row: the last one's centre plus the filter's reach, with a row to spare for Pillow's rounding."""
    reach = _SUPPORT.get(resample, 3.0) * max(scale, 1.0)
    return min(height, math.ceil((bottom - 0.5) * scale + reach) + 2)


def _row_decoded(canvas: Image.Image, y: int) -> bool:
    """Whether the decoder has written row ``y`` (see the module docstring)."""
    w = canvas.width
    return canvas.crop((w - 1, y, w, y + 1)).tobytes("raw", "RGBX")[3] == 255


def _clear_marks(canvas: Image.Image) -> bool:
    """Set the fourth byte of the last column's pixels to 0; whether every one now reads as not decoded."""
    w, h = canvas.size
    canvas.paste(0, (w - 1, 0, w, h))
    return not any(canvas.crop((w - 1, 0, w, h)).tobytes("raw", "RGBX")[3::4])


class _Bands:
    """The output's bands in order, handed out once the source rows each reads are decoded."""

    def __init__(self, size: tuple[int, int], source_height: int, resample: Image.Resampling,
                 band_rows: int) -> None:
        height = size[1]
        self.scale = source_height / height
        edges = [*range(0, height, band_rows), height]
        self.bands = [(top, bottom, source_rows(bottom, self.scale, source_height, resample))
                      for top, bottom in itertools.pairwise(edges)]
        self.next = 0  # the first band not yet handed out
        self.decoded = 0  # source rows known to be decoded
        self.ended = False  # the decode is over (done or failed): wait for nothing more
        self.cond = threading.Condition()

    def wanted(self) -> int | None:
        """The source rows the first band not yet ready needs, or None when every band is ready."""
        with self.cond:
            for _top, _bottom, need in self.bands[self.next:]:
                if need > self.decoded:
                    return need
            return None

    def mark(self, rows: int) -> None:
        with self.cond:
            if rows > self.decoded:
                self.decoded = rows
                self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def take(self, wait: bool) -> tuple[int, int] | None:
        """The next band whose rows are decoded; with ``wait``, blocks until there is one or the decode ends
        (then None once every band is handed out, or at once if it failed)."""
        with self.cond:
            while self.next < len(self.bands):
                top, bottom, need = self.bands[self.next]
                if need <= self.decoded:
                    self.next += 1
                    return top, bottom
                if self.ended or not wait:
                    return None
                self.cond.wait()
            return None

def decode_resampled(im: Image.Image, size: tuple[int, int], resample: Image.Resampling,
                     band_rows: int = BAND_ROWS, block: int = BLOCK_BYTES,
                     sink: RowSink | None = None) -> Image.Image | None:
    """Decode ``im`` (a JPEG opened and drafted, not loaded) and return it resampled to ``size``, or None
    when it is not a JPEG this module takes (``eligible``), before any pixel is decoded.

    ``sink`` is handed each band of the output once it is final (see ``RowSink``): the preview watermarks
    and encodes its rows there, while the later rows still decode. What it raises is raised here.

    Raises OSError as Pillow's own load would: "image file is truncated" when the file ends before the
    image does, a decoder error when its data is broken.
    """
    if not eligible(im, size) or not isinstance(im, ImageFile.ImageFile) or im.fp is None:
        return None
    codec, extents, offset, args = im.tile[0]
    width, height = im.size
    # Not filled with a colour: a fill writes every byte up front (for a DSLR photo's 20 MB canvas, 9 ms
    # of page faults and memset in a worker, 2026-11-30) and the decoder writes every pixel anyway. Only
    # the bytes the marks are read from, the last column's, are set to 0 here, and checked.
    canvas = Image.new("RGB", (width, height), None)
    if not _clear_marks(canvas):
        return None  # the mark is not readable on this Pillow: decode whole rather than guess
    decoder = Image._getdecoder(im.mode, codec, args, im.decoderconfig)
    out = Image.new("RGB", size, None)  # not initialised: every band is pasted over it before it is read
    bands = _Bands(size, height, resample, band_rows)
    failed: list[BaseException] = []

    def resample_band(top: int, bottom: int) -> None:
        box = (0, top * bands.scale, width, bottom * bands.scale)
        out.paste(canvas.resize((size[0], bottom - top), resample, box=box), (0, top))
        if sink is not None:
            sink(out, top, bottom)

    def resample_ready() -> None:
        try:
            while not failed and (band := bands.take(wait=True)) is not None:
                resample_band(*band)
        except BaseException as exc:  # re-raised in the caller's thread below
            failed.append(exc)
            bands.end()

    helper = threading.Thread(target=resample_ready, name="kaalwatch-jpeg-resample")
    helper.start()
    try:
        try:
            decoder.setimage(canvas.im, extents)
            _feed(im.fp, offset, decoder, block, canvas, bands, failed)
        finally:
            decoder.cleanup()
        bands.mark(height)
        while not failed and (band := bands.take(wait=False)) is not None:
            resample_band(*band)  # the tail: both threads take the last bands
    except BaseException as exc:
        failed.append(exc)
    finally:
        bands.end()
        helper.join()
    if failed:
        raise failed[0]
    return out


def _feed(fp: IO[bytes], offset: int, decoder: Any, block: int, canvas: Image.Image,
          bands: _Bands, failed: list[BaseException]) -> None:
    """Feed the file to ``decoder`` as ``ImageFile.load`` does, marking decoded rows after each piece."""
    fp.seek(offset)
    data = b""
    while not failed:
        piece = fp.read(block)
        if not piece:
            raise OSError(f"image file is truncated ({len(data)} bytes not processed)")
        data += piece
        consumed, err = decoder.decode(data)
        if consumed < 0:
            if err < 0:
                raise OSError(f"broken data stream when reading image file (decoder error {err})")
            return
        data = data[consumed:]
        while (need := bands.wanted()) is not None and _row_decoded(canvas, need - 1):
            bands.mark(need)
