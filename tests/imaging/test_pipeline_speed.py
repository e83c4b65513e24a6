"""Issue #19's pipeline: JPEG DCT scale by what the preview needs (with its quality proven), the watermark
layer built on another thread while the source decodes, and the tent filter that keeps small shrinks sharp."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import quality
from bench.inputs import artwork as bench_artwork
from kaalwatch.errors import ImageError
from kaalwatch.imaging import PreviewSpec, WatermarkSpec, render_previews
from kaalwatch.imaging import preview as preview_module
from kaalwatch.imaging.decode import decode
from kaalwatch.imaging.formats import classify
from kaalwatch.imaging.watermark import apply_watermark, watermark_layer

from .conftest import png_bytes

TEXT = "PROOF — not for print · Kaal Studio · #3141592653"


@pytest.mark.parametrize(("size", "decoded"), [
    ((1008, 756), (504, 378)),  # a phone's shape: half size still reaches the 400 px preview
    ((620, 877), (310, 439)),  # A4 portrait: 439 px at half, still enough
    ((2000, 1334), (500, 334)),  # a quarter still reaches it
    ((760, 570), (760, 570)),  # half would be 380 px: decoded whole
])
def test_jpeg_decodes_at_the_smallest_dct_scale_that_still_reaches_the_preview(
        tmp_path: Path, size: tuple[int, int], decoded: tuple[int, int]) -> None:
    src = tmp_path / "a.jpg"
    bench_artwork(*size, seed=3).save(src, quality=92)
    assert decode(src, 400).image.size == decoded


# Texture is per pixel, so a small source has more of it per preview pixel than a real one: these keep the
# real shrink factors (quarter, half, whole decode) at sizes a unit test can afford; the benchmark measures
# the same floor on full-size inputs.
@pytest.mark.parametrize(("size", "edge"), [((3000, 2000), 700), ((1008, 756), 400), ((1240, 1754), 800),
                                            ((760, 570), 400)])
def test_preview_pixels_stay_within_the_ssim_floor_of_a_linear_light_lanczos_reference(
        tmp_path: Path, size: tuple[int, int], edge: int) -> None:
    src = tmp_path / "a.jpg"
    bench_artwork(*size, seed=5).save(src, quality=92)
    im, *_ = preview_module._prepare(src, edge, "#ffffff", 10**9, classify(src))
    reference = quality.reference(src, im.size)
    assert quality.ssim(np.asarray(im), reference) >= 0.98


def test_a_shrink_just_above_one_is_not_aliased(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 2500 px reduced by 3 to 834 and then to 800: a box this narrow samples; the tent filter averages.
    src = tmp_path / "a.png"
    bench_artwork(2500, 2500, seed=8, alpha=True).save(src)

    def score() -> float:
        im, *_ = preview_module._prepare(src, 800, "#ffffff", 10**9, classify(src))
        assert im.size == (800, 800)
        return quality.ssim(np.asarray(im), quality.reference(src, im.size))

    tent = score()
    monkeypatch.setattr(preview_module, "FINAL_FILTER", Image.Resampling.BOX)
    assert tent >= 0.98 and tent > score() + 0.003


def test_the_layer_built_ahead_is_the_layer_applied_and_the_output_is_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    bench_artwork(1800, 1200, seed=1).save(src, quality=90)
    spec = PreviewSpec(long_edge=600, thumb_edge=150)
    text = TEXT + "-ahead"
    watermark_layer.cache_clear()
    render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg", spec, text)
    info = watermark_layer.cache_info()
    # Built once, on the decode's side thread, then reused: by each streamed band (``_StreamedPreview``).
    assert info.misses == 1 and info.hits >= 1
    # The same pixels without building ahead: the ordinary path, layer made where it is applied.
    watermark_layer.cache_clear()
    im, *_ = preview_module._prepare(src, spec.long_edge, spec.background, spec.max_pixels, classify(src))
    apply_watermark(im, spec.watermark, text)
    preview_module.atomic_save_jpegs([(im, tmp_path / "expected.jpg")], spec.jpeg_quality)
    with Image.open(tmp_path / "p.jpg") as got, Image.open(tmp_path / "expected.jpg") as expected:
        assert got.size == expected.size and got.tobytes() == expected.tobytes()


def test_a_quarter_turned_photo_gets_its_layer_at_the_upright_size(tmp_path: Path) -> None:
    src = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    bench_artwork(900, 600, seed=2).save(src, quality=90, exif=exif)
    spec = PreviewSpec(long_edge=300, thumb_edge=100)
    watermark_layer.cache_clear()
    result = render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg", spec, TEXT)
    assert result.preview_size == (200, 300)
    assert watermark_layer.cache_info().misses == 1  # the guess from the header was right: no second build


def test_no_layer_is_built_ahead_without_a_watermark(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    bench_artwork(500, 400, seed=4).save(src)
    watermark_layer.cache_clear()
    render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg",
                    PreviewSpec(long_edge=200, thumb_edge=50, watermark=WatermarkSpec(enabled=False)), TEXT)
    assert watermark_layer.cache_info().misses == 0


def test_a_file_that_fails_to_decode_leaves_no_thread_behind(tmp_path: Path) -> None:
    src = tmp_path / "cut.png"
    src.write_bytes(png_bytes(bench_artwork(600, 400, seed=6))[:4000])
    before = threading.active_count()
    with pytest.raises(ImageError):
        render_previews(src, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(long_edge=200, thumb_edge=50),
                        TEXT + "-cut")
    assert threading.active_count() == before
    assert not (tmp_path / "p.jpg").exists()


_FREE_AND_MEASURE = """
import sys
from kaalwatch.imaging.pool import _give_back_large_buffers
if sys.argv[1] == "tuned":
    _give_back_large_buffers()

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

base = rss_mb()
for _ in range(3):  # the size of one of Pillow's image blocks and more, touched page by page, then freed
    block = bytearray(24 << 20)
    block[::4096] = b"\\x01" * len(range(0, 24 << 20, 4096))
    del block
print(rss_mb() - base)
"""


def test_a_worker_gives_freed_image_buffers_back_to_the_system() -> None:
    import subprocess
    import sys

    def kept(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FREE_AND_MEASURE, mode], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[2])
        return int(done.stdout.strip())

    assert kept("default") >= 20  # glibc keeps a freed large block once its threshold has risen
    assert kept("tuned") <= 4  # what a worker does at start: the block goes back


_FAULTS_PER_RENDER = """
import resource, sys
from pathlib import Path
from PIL import Image
from kaalwatch.imaging import pool
from kaalwatch.imaging.preview import PreviewSpec, render_previews

pool._give_back_large_buffers()
if sys.argv[1] == "worker":
    pool._reuse_image_blocks()
folder = Path(sys.argv[2])
src = folder / "art.png"
Image.effect_noise((1800, 1200), 40).convert("RGB").save(src, compress_level=1)
spec = PreviewSpec(long_edge=1200, thumb_edge=300)
render_previews(src, folder / "p.jpg", folder / "t.jpg", spec, "PROOF #1", threads=1)  # warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
render_previews(src, folder / "p.jpg", folder / "t.jpg", spec, "PROOF #1", threads=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_worker_reuses_warm_image_memory_instead_of_faulting_in_fresh_pages(tmp_path: Path) -> None:
    import subprocess
    import sys

    def faults(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _FAULTS_PER_RENDER, mode, str(tmp_path)], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).resolve().parents[2])
        return int(done.stdout.strip())

    mapped, worker = faults("mapped"), faults("worker")
    # 1800x1200 decoded is 8.6 MB (2,100 pages) and a render makes several images that size or smaller.
    assert mapped > 2000
    assert worker * 3 < mapped
