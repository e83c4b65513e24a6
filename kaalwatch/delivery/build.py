"""Pixels to deliverable bytes: decode the approved copy at full resolution, shape it as a workflow promises,
encode it without personal metadata, and fit it under Etsy's per-file limit or say why it cannot be.

Fitting never changes what the buyer sees beyond what a promise allows: it does not shrink a promised
full-resolution file. The ladder is PNG/TIFF at normal, then maximum compression; then a high-quality JPEG
in place of the lossless file (recorded); JPEG and PDF step their quality down to ``MIN_QUALITY``. A ZIP of
parts is not a delivery Etsy's order page accepts, so when the ladder ends the promise is reported as one
that cannot be met.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageCms, ImageColor

from kaalwatch.delivery.framing import Frame
from kaalwatch.delivery.limits import human_size, max_bytes
from kaalwatch.errors import DeliveryError, ImageError
from kaalwatch.imaging.decode import decode, upright
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings

# Below this JPEG quality, compression artefacts show in a print; a file that only fits lower is refused.
MIN_QUALITY = 85
# Quality of the JPEG that stands in for a lossless file that is too large.
FALLBACK_QUALITIES = (95, 90, MIN_QUALITY)
# A lossless file estimated this far over the cap is not attempted (the estimate is within a few per cent).
SKIP_MARGIN = 1.25
SAMPLE_BANDS = 12
# Decode at full size: a target this large stops the imaging decoder from draft-scaling or reducing.
_FULL_SIZE = 1 << 30

EXTENSIONS = {"png": "png", "jpeg": "jpg", "tiff": "tif", "pdf": "pdf"}
# The lossless formats' first rungs: normal compression, then the strongest (description, save options).
LOSSLESS: dict[str, tuple[tuple[str, dict[str, object]], ...]] = {
    "png": (("PNG", {"compress_level": 6}), ("PNG optimised (maximum compression)", {"optimize": True})),
    "tiff": (("TIFF (LZW)", {"compression": "tiff_lzw"}), ("TIFF (deflate)", {"compression": "tiff_adobe_deflate"})),
}


@dataclass
class Source:
    """The approved version, upright and in the colour space the deliverables are written in."""

    image: Image.Image  # RGB, RGBA, L or LA
    icc: bytes | None  # profile to embed (sRGB's when converted, the artwork's own when kept)
    notes: list[str] = field(default_factory=list)
    colour_problem: str | None = None  # the embedded profile could not be converted: colours may be off
    half: Image.Image | None = None  # 2x2 area average of ``image``, for files of half its size or less


@dataclass
class Encoded:
    """One deliverable's bytes and how they were reached."""

    data: bytes
    format: str  # png, jpeg, tiff, pdf (the format actually written)
    width: int
    height: int
    steps: list[str]  # what fitting did, in order; empty when the first encoding fitted

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def load_source(path: Path, settings: Settings) -> Source:
    """Decode the immutable copy at full resolution; DeliveryError when it cannot be read."""
    try:
        decoded = decode(path, _FULL_SIZE, int(settings.preview.max_megapixels * 1_000_000))
        image, icc, orientation = decoded.image, decoded.icc, decoded.orientation
        if decoded.low_res:
            raise DeliveryError(
                f"{path.name} holds only a low-resolution thumbnail",
                hint="export the artwork as PNG into the order folder and approve that version",
            )
    except ImageError as exc:
        raise DeliveryError(f"the approved version cannot be decoded: {exc}",
                            hint="export it as PNG into the order folder and approve that version") from None
    except FileNotFoundError:
        raise DeliveryError(f"the approved version's copy {path.name} is missing",
                            hint="save the artwork again and approve the new version") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DeliveryError(f"the approved version cannot be decoded ({exc.__class__.__name__})",
                            hint="export it as PNG into the order folder and approve that version") from None
    image = upright(image, orientation)
    image.info = {}  # nothing of the source's metadata (EXIF, XMP, comments, text chunks) may travel on
    return _colour(image, icc, settings.delivery.colour, [])


def _colour(image: Image.Image, icc: bytes | None, mode: str, notes: list[str]) -> Source:
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        # CMYK and other modes have no place in PNG; they go to sRGB whatever the setting says.
        if mode == "keep":
            notes.append(f"{image.mode} converted to sRGB (the formats delivered cannot hold it)")
        mode = "srgb"
    if mode == "keep":
        return Source(image, icc, notes)
    problem = None
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
            work = image.convert("RGBA") if image.mode == "LA" else image
            converted = ImageCms.profileToProfile(work, source, ImageCms.createProfile("sRGB"),
                                                  outputMode=out_mode)
            if converted is not None:
                image = converted
                notes.append("converted to sRGB from the embedded profile")
        except (OSError, ImageCms.PyCMSError, ValueError):
            problem = "the embedded colour profile could not be converted; pixels taken as sRGB"
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGB")
    image.info = {}
    if problem:
        notes.append(problem)
    return Source(image, srgb_profile(), notes, problem)


def halve_for(source: Source, frames: list[Frame]) -> None:
    """Give ``source`` its half-size copy when at least one frame shrinks the art to half or less: one 2x2 area
    average (exact and cheap) shared by every such file, instead of each resampling all 36 MP of a 6000 px art."""
    if source.half is None and any(not f.margins and f.size[0] * 2 <= f.canvas[0] for f in frames):
        source.half = source.image.reduce(2)


def _resample(source: Source, frame: Frame) -> Image.Image:
    image = source.image
    left, top, right, bottom = (float(v) for v in frame.box)
    if source.half is not None and frame.size[0] * 2 <= frame.canvas[0]:
        image, left, top, right, bottom = source.half, left / 2, top / 2, right / 2, bottom / 2
    box = (left, top, right, bottom)
    if (right - left, bottom - top) == frame.size and all(v.is_integer() for v in box):
        return image.crop((int(left), int(top), int(right), int(bottom)))  # an exact halving: nothing to filter
    return image.resize(frame.size, Image.Resampling.LANCZOS, box=box)


def shape(source: Source, frame: Frame, promise: Promise) -> tuple[Image.Image, list[str]]:
    """The pixels of ``frame``: its box of the artwork scaled to its size, on margins when it pads.

    Cropping and scaling are one resample over the box (no full-size intermediate copy of a large artwork).
    """
    image = source.image
    notes: list[str] = []
    if frame.margins:
        scale = frame.size[0] / frame.canvas[0]
        art = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        fitted = image if art == image.size else image.resize(art, Image.Resampling.LANCZOS)
        sheet = Image.new(image.mode, frame.size, ImageColor.getcolor(promise.margin_colour, image.mode))
        free = (frame.size[0] - art[0], frame.size[1] - art[1])
        sheet.paste(fitted, (round(free[0] * frame.position), round(free[1] * frame.position)))
        image = sheet
        notes.append(f"fitted with {promise.margin_colour} margins to {frame.size[0]}x{frame.size[1]}")
    elif frame.size != frame.canvas:
        image = _resample(source, frame)
    elif frame.box != (0, 0, frame.width, frame.height):
        image = image.crop(frame.box)
    if promise.long_edge and max(frame.canvas) < promise.long_edge:
        notes.append(f"artwork gives {max(frame.canvas)} px, less than the promised {promise.long_edge} px; "
                     f"not enlarged")
    image.info = {}
    return image, notes


def _opaque(image: Image.Image, background: str) -> Image.Image:
    """JPEG and the PDF's JPEG stream have no alpha: flatten onto the configured background."""
    if image.mode in ("RGB", "L"):
        return image
    rgba = image.convert("RGBA")
    base = Image.new("RGB", rgba.size, ImageColor.getrgb(background)[:3])
    base.paste(rgba, (0, 0), rgba.getchannel("A"))
    return base


def image_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    """``image`` encoded as ``fmt`` without its metadata; options that are None are left out."""
    buffer = io.BytesIO()
    image.info = {}
    image.save(buffer, fmt, **{k: v for k, v in options.items() if v is not None})
    return buffer.getvalue()


def _attempts(image: Image.Image, promise: Promise, icc: bytes | None, background: str,
              page_dpi: float) -> list[tuple[str, str, Callable[[], bytes]]]:
    """The fitting ladder for one promise: (format, description, encoder), first choice first."""
    dpi = (round(page_dpi), round(page_dpi))
    opaque: list[Image.Image] = []

    def flat() -> Image.Image:
        if not opaque:
            opaque.append(_opaque(image, background))
        return opaque[0]

    def jpeg(quality: int) -> Callable[[], bytes]:
        # 4:4:4 chroma: line art and lettering stay crisp, which matters more than bytes here. No
        # optimize=True: Pillow sizes its buffer at one byte per pixel for it, which detailed 4:4:4 art
        # overflows ("Suspension not allowed here").
        return lambda: image_bytes(flat(), "JPEG", quality=quality, subsampling=0, dpi=dpi, icc_profile=icc)

    def pdf(quality: int, resolution: float) -> Callable[[], bytes]:
        return lambda: image_bytes(flat(), "PDF", resolution=resolution, quality=quality, subsampling=0)

    def lossless(options: dict[str, object]) -> Callable[[], bytes]:
        return lambda: image_bytes(image, promise.format.upper(), dpi=dpi, icc_profile=icc, **options)

    qualities = sorted({q for q in (promise.quality, 90, MIN_QUALITY) if MIN_QUALITY <= q <= promise.quality},
                       reverse=True)
    if promise.format == "jpeg":
        return [("jpeg", f"JPEG quality {q}", jpeg(q)) for q in qualities]
    if promise.format == "pdf":
        # Page size = pixels / dpi: 2400x3000 px at 300 DPI is an 8x10 in page; with a print size the page is
        # that size whatever the pixels (fewer pixels print at a lower DPI, which the checks warn about).
        return [("pdf", f"PDF (JPEG quality {q}) at {page_dpi:.0f} DPI", pdf(q, page_dpi)) for q in qualities]
    ladder = [(promise.format, description, lossless(options)) for description, options in LOSSLESS[promise.format]]
    return ladder + [("jpeg", f"high-quality JPEG (quality {q}) instead of {promise.format.upper()}", jpeg(q))
                     for q in FALLBACK_QUALITIES]


def lossless_estimate(image: Image.Image) -> int:
    """The size a PNG of ``image`` would have, from a few bands of rows spread over its height (deflate's window
    spans two rows of a wide image, so bands compress as they would inside the whole); 0 for small images."""
    rows = 8
    if image.height < SAMPLE_BANDS * rows * 4:
        return 0
    sampled = 0
    for band in range(SAMPLE_BANDS):
        top = (image.height - rows) * band // (SAMPLE_BANDS - 1)
        sampled += len(image_bytes(image.crop((0, top, image.width, top + rows)), "PNG", compress_level=6))
    return sampled * image.height // (SAMPLE_BANDS * rows)


def encode(image: Image.Image, promise: Promise, icc: bytes | None, settings: Settings,
           describe: str, *, page_dpi: float | None = None) -> Encoded:
    """Encode ``image`` for ``promise``, climbing the fitting ladder until it fits Etsy's per-file limit.

    ``page_dpi`` is the resolution written (the frame's DPI at its print size); the promise's DPI otherwise.

    Raises DeliveryError naming the promise (``describe``) when even the last step is too large.
    """
    cap = max_bytes(settings.delivery)
    steps: list[str] = []
    last_size, last_step = 0, ""
    ladder = _attempts(image, promise, icc, settings.preview.background, page_dpi or float(promise.dpi))
    if promise.format in ("png", "tiff"):
        estimate = lossless_estimate(image)
        if estimate > cap * SKIP_MARGIN:
            # Encoding 36 MP losslessly twice only to learn it is too big costs ten times the decode.
            ladder = [rung for rung in ladder if rung[0] == "jpeg"]
            steps.append(f"{promise.format.upper()} estimated at {human_size(estimate)} from sampled rows; "
                         f"not attempted")
    for position, (fmt, description, run) in enumerate(ladder):
        data = run()
        if len(data) <= cap:
            if position:
                steps.append(f"{description}: {human_size(len(data))}")
            return Encoded(data, fmt, image.width, image.height, steps)
        steps.append(f"{description} was {human_size(len(data))}")
        last_size, last_step = len(data), description
    raise DeliveryError(
        f"the promised {describe} is {human_size(last_size)} even as {last_step}, over Etsy's "
        f"{settings.delivery.max_file_mb:g} MB per file; a ZIP of parts is not accepted",
        hint="promise a smaller long_edge for it in the workflow, or send this file outside Etsy",
    )
