"""Previews of versions: their watermark spec, (re-)rendering from the immutable copy, finding stale or
broken ones. A mixin of the ``Ingestor`` (it needs the same workspace, settings and renderer)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import BrokenExecutor
from pathlib import Path

from kaalwatch import lifecycle, workflows
from kaalwatch.errors import ImageError, KaalwatchError
from kaalwatch.imaging import (
    FileKind,
    PreviewSpec,
    RenderResult,
    WatermarkSpec,
    classify,
    spec_key,
    watermark_text,
)
from kaalwatch.imaging.complete import incomplete
from kaalwatch.model import Job, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

ACTOR = "watcher"
Renderer = Callable[[Path, Path, Path, PreviewSpec, str], RenderResult]


def preview_spec(settings: Settings, order: Order, job: Job) -> tuple[PreviewSpec, str]:
    """The preview spec and watermark template of a job: the workflow may override size and template."""
    flow = workflows.by_name(settings.workflows, settings.default_workflow, job.workflow)
    template = flow.watermark or settings.watermark.template
    mark = WatermarkSpec(template=template, opacity=settings.watermark.opacity, angle=settings.watermark.angle,
                         size=settings.watermark.size, color=settings.watermark.color,
                         font_path=settings.watermark.font or None)
    edge = flow.preview_long_edge or settings.preview.long_edge
    spec = PreviewSpec(long_edge=edge, thumb_edge=min(settings.preview.thumb_edge, edge),
                       background=settings.preview.background, jpeg_quality=min(95, settings.preview.jpeg_quality),
                       max_pixels=int(settings.preview.max_megapixels * 1_000_000), watermark=mark)
    return spec, template


def watermark_for(settings: Settings, order: Order, job: Job, number: int) -> tuple[PreviewSpec, str, str]:
    """(spec, text, key) of version ``number``'s preview: the key changes whenever its pixels would."""
    spec, template = preview_spec(settings, order, job)
    first = (order.buyer_name or "").split()
    text = watermark_text(template, {"shop": settings.shop_name, "receipt_id": order.receipt_id,
                                     "buyer_first_name": first[0] if first else "", "version": number})
    return spec, text, spec_key(spec, text)

def text_template(order: Order, job: Job, settings: Settings) -> str:
    flow = workflows.by_name(settings.workflows, settings.default_workflow, job.workflow)
    return flow.watermark or settings.watermark.template



class PreviewMixin:
    """Preview work on recorded versions; ``ws``, ``settings`` and ``render`` come from the Ingestor."""

    ws: Workspace
    settings: Settings
    renderer: Renderer

    def _render(self, src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        try:
            return self.renderer(src, preview, thumb, spec, text)
        except BrokenExecutor:
            # The worker died on this file (a decoder crash, the OOM killer): treat it as undecodable.
            raise ImageError("the preview worker crashed while decoding it") from None
    # --------------------------------------------------------------------------------------- previews

    def render_version(self, receipt_id: int, job_id: str, number: int) -> bool:
        """(Re-)render one version's preview from its immutable copy; False when there is nothing to do."""
        order = self.ws.load(receipt_id)
        job = order.job(job_id)
        version = job.version(number)
        if version is None:
            return False
        spec, text, key = watermark_for(self.settings, order, job, number)
        preview, thumb = self.ws.preview_paths(receipt_id, job_id, number, key)
        try:
            source = self.ws.tool_path(version.copy)
            result = self._render(source, preview, thumb, spec, text)
        except (ImageError, KaalwatchError, OSError) as exc:
            message = exc.message if isinstance(exc, KaalwatchError) else f"copy unreadable ({exc.strerror})"
            with self.ws.edit(receipt_id) as fresh:
                lifecycle.update_version(fresh, job_id, number, ACTOR, error=f"preview failed: {message}")
            return False
        old: list[str] = []
        with self.ws.edit(receipt_id) as fresh:
            current = fresh.job(job_id).version(number)
            if current is None:
                return False
            old = [p for p in (current.preview, current.thumb) if p]
            fields: dict[str, object] = {"kind": result.source_kind.value, "note": result.note, "error": None}
            if result.preview_path is not None:
                fields.update(preview=self.ws.relative_to_tool(preview), thumb=self.ws.relative_to_tool(thumb),
                              preview_key=key, width=result.width, height=result.height, low_res=result.low_res)
            lifecycle.update_version(fresh, job_id, number, ACTOR, **fields)
        for rel in old:
            try:
                stale = self.ws.tool_path(rel)
            except KaalwatchError:
                continue
            if stale not in (preview.resolve(), thumb.resolve()):
                stale.unlink(missing_ok=True)
        return True

    def stale_previews(self, order: Order, *, rebuild: bool = False) -> list[tuple[str, int]]:
        """(job, version) pairs whose preview is missing, made with other settings, or (rebuild) all."""
        out: list[tuple[str, int]] = []
        for job in order.jobs:
            for version in job.versions:
                if classify(version.copy) is FileKind.OTHER:
                    continue  # closed formats have no preview of their own (their export is a version)
                if rebuild:
                    out.append((job.job_id, version.number))
                    continue
                _, _, key = watermark_for(self.settings, order, job, version.number)
                if version.preview_key != key or not version.preview or not self._exists(version.preview) \
                        or not version.thumb or not self._exists(version.thumb):
                    if version.error and version.preview_key == key:
                        continue  # already failed with these settings; a rebuild retries
                    out.append((job.job_id, version.number))
        return out

    def _exists(self, rel: str) -> bool:
        try:
            return self.ws.tool_path(rel).is_file()
        except KaalwatchError:
            return False
    def mark_broken(self, order: Order) -> int:
        """Versions whose immutable copy fails its format's completeness rule (a closed format that passed the
        quiet period torn, a copy damaged later) are marked so on the page; returns how many were marked."""
        marked: list[tuple[str, int, str]] = []
        for job in order.jobs:
            for version in job.versions:
                if version.error:
                    continue
                try:
                    reason = incomplete(self.ws.tool_path(version.copy))
                except KaalwatchError:
                    continue
                if reason:
                    marked.append((job.job_id, version.number, f"the saved file is broken: it {reason}"))
        if marked:
            with self.ws.edit(order.receipt_id) as fresh:
                for job_id, number, message in marked:
                    lifecycle.update_version(fresh, job_id, number, ACTOR, error=message)
        return len(marked)
