"""The staging copy and the preview run side by side (issue #19), and still agree on the bytes they read."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kaalwatch.imaging import PreviewSpec, RenderResult, render_previews
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import ingest as ingest_module
from kaalwatch.watch.ingest import Ingestor
from kaalwatch.watch.seen import SeenStore
from tests.watch.helpers import png

Renderer = Callable[[Path, Path, Path, PreviewSpec, str], RenderResult]


def _ingestor(ws: Workspace, settings: Settings, renderer: Renderer) -> Ingestor:
    return Ingestor(ws, settings, renderer, SeenStore(ws.tool_dir / "watch.sqlite"))


def test_the_copy_and_the_render_run_at_the_same_time(ws: Workspace, settings: Settings, order_at: Callable,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    order, folder = order_at()
    rendering = threading.Event()
    copy = ingest_module.stage_copy

    def copy_once_the_render_runs(src: Path, staging: Path) -> object:
        # One after the other, the render could only start once this returned: this would wait in vain.
        assert rendering.wait(10), "the render did not start while the copy was under way"
        return copy(src, staging)

    def render(src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        rendering.set()
        return render_previews(src, preview, thumb, spec, text)

    monkeypatch.setattr(ingest_module, "stage_copy", copy_once_the_render_runs)
    (folder / "portrait.png").write_bytes(png(1))
    outcome = _ingestor(ws, settings, render).ingest(folder / "portrait.png")
    assert outcome.action == "version"
    (version,) = ws.load(order.receipt_id).jobs[0].versions
    assert version.preview and ws.tool_path(version.preview).is_file()
    assert ws.tool_path(version.copy).read_bytes() == png(1)


def test_a_file_replaced_during_the_render_with_its_size_and_mtime_kept_is_changed_not_a_version(
        ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    art = folder / "portrait.png"
    art.write_bytes(png(2))
    first = png(2)
    other = png(3)[:len(first)].ljust(len(first), b"\0")  # other bytes, the same size
    assert other != first

    def render_then_replace(src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        result = render_previews(src, preview, thumb, spec, text)
        # A sync client swaps in other bytes by rename and restores the mtime (and here, the size too).
        st = art.stat()
        swapped = art.with_name(".incoming")
        swapped.write_bytes(other)
        os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(swapped, art)
        return result

    outcome = _ingestor(ws, settings, render_then_replace).ingest(art)
    assert outcome.action == "changed"
    assert ws.load(order.receipt_id).jobs[0].versions == []
    assert not list(ws.previews_dir.rglob("*.jpg"))  # the preview of bytes nobody kept is gone too


def test_a_render_that_fails_for_another_reason_than_the_file_reaches_the_caller(
        ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    (folder / "portrait.png").write_bytes(png(4))

    def shut_down(src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        raise RuntimeError("PreviewPool is shut down")

    with pytest.raises(RuntimeError, match="shut down"):
        _ingestor(ws, settings, shut_down).ingest(folder / "portrait.png")
    assert ws.load(order.receipt_id).jobs[0].versions == []
    assert not [p for p in ws.versions_dir.rglob("*") if p.is_file()]  # no staging copy left behind


def _counting(calls: list[Path]) -> Renderer:
    def render(src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> RenderResult:
        calls.append(src)
        return render_previews(src, preview, thumb, spec, text)
    return render


def test_a_version_renamed_while_tidying_is_hashed_first_and_never_rendered(
        ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    calls: list[Path] = []
    ingestor = _ingestor(ws, settings, _counting(calls))
    (folder / "portrait.png").write_bytes(png(5))
    assert ingestor.ingest(folder / "portrait.png").action == "version" and len(calls) == 1
    (folder / "old").mkdir()
    os.replace(folder / "portrait.png", folder / "old" / "portrait v1.png")  # a rename keeps size and mtime
    outcome = ingestor.ingest(folder / "old" / "portrait v1.png")
    assert outcome.action not in ("version", "changed") and len(calls) == 1
    assert len(ws.load(order.receipt_id).jobs[0].versions) == 1


def test_new_bytes_with_a_versions_size_and_mtime_still_become_a_version_with_a_preview(
        ws: Workspace, settings: Settings, order_at: Callable) -> None:
    order, folder = order_at()
    calls: list[Path] = []
    ingestor = _ingestor(ws, settings, _counting(calls))

    def bmp(seed: int) -> bytes:  # uncompressed: every picture of one size is one file size
        out = io.BytesIO()
        Image.effect_noise((120, 90), 20 + seed).convert("RGB").save(out, "BMP")
        return out.getvalue()

    first = folder / "portrait.bmp"
    first.write_bytes(bmp(1))
    assert ingestor.ingest(first).action == "version"
    st = first.stat()
    twin = folder / "portrait again.bmp"
    twin.write_bytes(bmp(2))
    assert twin.stat().st_size == st.st_size
    os.utime(twin, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ingestor.ingest(twin).action == "version"  # the hash decides, and then it is rendered
    versions = ws.load(order.receipt_id).jobs[0].versions
    assert len(versions) == 2 and versions[1].preview and ws.tool_path(versions[1].preview).is_file()
    assert len(calls) == 2
