"""The two-thread final resample gives the pixels of one resize (exactly with BOX, within one level with the
previews' BILINEAR and with LANCZOS), and is used only when a core is free for it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from kaalwatch.imaging import PreviewPool, PreviewSpec, render_previews
from kaalwatch.imaging.pool import default_workers
from kaalwatch.imaging.preview import SPLIT_RESIZE_PIXELS, resize_in_halves


@pytest.mark.parametrize(("source", "target"), [((3000, 2000), (1600, 1067)), ((2001, 2999), (533, 799)),
                                                ((4000, 1001), (1600, 401))])
@pytest.mark.parametrize("resample", [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])
def test_halves_equal_one_resize(source: tuple[int, int], target: tuple[int, int],
                                 resample: Image.Resampling) -> None:
    im = Image.merge("RGB", [Image.effect_noise(source, 60) for _ in range(3)])
    assert im.width * im.height >= SPLIT_RESIZE_PIXELS
    before = threading.active_count()
    split = resize_in_halves(im, target, resample)
    assert threading.active_count() == before  # the helper thread is joined, nothing lingers
    assert split.size == target
    difference = ImageChops.difference(split, im.resize(target, resample))
    if resample is Image.Resampling.BOX:
        assert difference.getbbox() is None
    else:  # wider filters: Pillow rounds its horizontal pass per box
        assert max(high for _, high in difference.getextrema()) <= 1


def test_one_thread_is_one_plain_resize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads=1`` (a pool whose workers keep every core busy) starts no resize thread."""
    src = tmp_path / "big.png"
    Image.merge("RGB", [Image.effect_noise((2400, 1800), 60) for _ in range(3)]).save(src, compress_level=1)
    started: list[str] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(), "PROOF", threads=1)
    assert "kaalwatch-resize" not in started
    render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(), "PROOF", threads=2)
    assert "kaalwatch-resize" in started


def test_pool_gives_a_render_a_second_thread_only_when_a_core_is_free() -> None:
    cores = default_workers()
    with PreviewPool(workers=cores) as busy:
        assert busy.render_threads == 1
    with PreviewPool(workers=1) as alone:
        assert alone.render_threads == cores
