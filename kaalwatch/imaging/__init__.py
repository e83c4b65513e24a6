"""The imaging core: turn a saved artwork into a watermarked proof preview and thumbnail, safely and fast.

Public API (what the watcher calls)::

    classify(path) -> FileKind                        # by name: RASTER, PSD, KRA, ORA, PROCREATE, HEIC, OTHER
    watermark_text(template, fields) -> str           # known {keys} only, values sanitised and capped
    spec_key(spec, text) -> str                       # 12 hex digits; with the content hash = cache name
    render_previews(src, preview_out, thumb_out, spec, text) -> RenderResult
    render_reference_thumbnail(src, out, edge=400, max_pixels=...) -> None
    PreviewPool(workers=None).submit(src, preview_out, thumb_out, spec, text) -> Future[RenderResult]

Every decoding failure is a ``kaalwatch.errors.ImageError`` with a one-line message.
"""

from __future__ import annotations

from kaalwatch.imaging.formats import FileKind, classify
from kaalwatch.imaging.limits import DEFAULT_MAX_PIXELS
from kaalwatch.imaging.pool import PreviewPool
from kaalwatch.imaging.preview import (
    PreviewSpec,
    RenderResult,
    render_previews,
    render_reference_thumbnail,
    spec_key,
)
from kaalwatch.imaging.watermark import WatermarkSpec, watermark_text

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FileKind",
    "PreviewPool",
    "PreviewSpec",
    "RenderResult",
    "WatermarkSpec",
    "classify",
    "render_previews",
    "render_reference_thumbnail",
    "spec_key",
    "watermark_text",
]
