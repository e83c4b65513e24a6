"""The final resample in bands, on one thread or two, gives the pixels of one resize within one level (BOX,
the previews' BILINEAR, LANCZOS); the second thread is used only when a render has a core to itself."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from kaalwatch.imaging import PreviewPool, PreviewSpec, RenderResult, render_previews
from kaalwatch.imaging.pool import default_workers, render_threads
from kaalwatch.imaging.preview import SPLIT_RESIZE_PIXELS, resize_in_bands


@pytest.mark.parametrize(("source", "target"), [((3000, 2000), (1600, 1067)), ((2001, 2999), (533, 799)),
                                                ((4000, 1001), (1600, 401))])
@pytest.mark.parametrize("resample", [Image.Resampling.BOX, Image.Resampling.BILINEAR, Image.Resampling.LANCZOS])
@pytest.mark.parametrize("threads", [1, 2])
def test_bands_equal_one_resize(source: tuple[int, int], target: tuple[int, int], resample: Image.Resampling,
                                threads: int) -> None:
    im = Image.merge("RGB", [Image.effect_noise(source, 60) for _ in range(3)])
    assert im.width * im.height >= SPLIT_RESIZE_PIXELS
    before = threading.active_count()
    split = resize_in_bands(im, target, resample, threads)
    assert threading.active_count() == before  # the helper thread is joined, nothing lingers
    assert split.size == target
    difference = ImageChops.difference(split, im.resize(target, resample))
    # Pillow rounds its horizontal pass per band, and a band's edge may cut a source pixel
    assert max(high for _, high in difference.getextrema()) <= 1


def test_one_thread_starts_no_resize_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``threads=1`` (a pool whose workers keep every core busy) starts no resize thread; 2 does."""
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


def test_a_render_gets_a_second_thread_only_with_a_core_to_itself() -> None:
    assert render_threads(2, 1) == 2  # a lone save on an idle two-core machine
    assert render_threads(2, 2) == 1  # a burst: both workers busy
    assert render_threads(4, 2) == 2
    assert render_threads(1, 1) == 1


def test_pool_passes_the_thread_budget_to_each_render(tmp_path: Path) -> None:
    """Renders submitted back to back (the first one waits for its worker to spawn, so none has finished)
    share the cores; once all are done the count is back to zero."""
    src = tmp_path / "a.png"
    Image.new("RGB", (64, 48)).save(src)
    cores = default_workers()
    with PreviewPool(workers=cores) as pool:
        submitted: list[int] = []
        real_submit = pool._executor.submit

        def recording(job: functools.partial[RenderResult]) -> Future[RenderResult]:
            submitted.append(job.args[-1])
            return real_submit(job)

        pool._executor.submit = recording  # type: ignore[method-assign, assignment]
        futures = [pool.submit(src, tmp_path / f"p{i}.jpg", tmp_path / f"t{i}.jpg", PreviewSpec(), "X")
                   for i in range(cores)]
        assert [f.result(timeout=60).preview_size for f in futures] == [(64, 48)] * cores
        assert submitted == [render_threads(cores, n) for n in range(1, cores + 1)]
        assert pool._in_flight == 0


def test_a_failing_band_raises_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    im = Image.new("RGB", (3000, 2000))
    real = Image.Image.resize

    def resize(self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
        if threading.current_thread().name == "kaalwatch-resize":
            raise MemoryError("band")
        return real(self, size, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", resize)
    with pytest.raises(MemoryError, match="band"):
        resize_in_bands(im, (1600, 1067), Image.Resampling.BILINEAR, threads=2)
