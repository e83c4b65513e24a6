"""The preview benchmark's own tools: inputs that decode, new bytes per save, the floor, SSIM and the case."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from PIL import Image, ImageFilter

from bench import quality
from bench.case_preview import PATH_ALONE, QUICK, jpeg_floor_scale, run
from bench.inputs import Input, artwork, make, save_variant, write_psd
from kaalwatch.imaging.complete import incomplete
from kaalwatch.imaging.decode import decode


@pytest.mark.parametrize("spec", QUICK, ids=lambda s: s.fmt + ("a" if s.alpha else ""))
def test_every_input_kind_decodes_and_each_variant_is_new_bytes_with_the_same_pixels(spec: Input, tmp_path) -> None:
    path = make(spec, tmp_path)
    one, two = tmp_path / f"one{spec.suffix}", tmp_path / f"two{spec.suffix}"
    save_variant(spec, path, one, 1)
    save_variant(spec, path, two, 2)
    assert len({path.read_bytes(), one.read_bytes(), two.read_bytes()}) == 3
    pixels = []
    for candidate in (path, one, two):
        assert incomplete(candidate) is None  # the watcher's own completeness check accepts the marked copies
        pixels.append(np.asarray(decode(candidate, 1 << 30).image))
    assert pixels[0].shape[:2] == spec.size[::-1]
    assert all(np.array_equal(pixels[0], other) for other in pixels[1:])


def test_sixteen_bit_png_carries_detail_below_eight_bits(tmp_path) -> None:
    path = make(Input("t", "png16", (64, 32), seed=3), tmp_path)
    with Image.open(path) as im:
        assert im.size == (64, 32) and im.mode == "RGB"
    raw = path.read_bytes()
    assert raw[24] == 16  # IHDR bit depth


def test_psd_writer_round_trips(tmp_path) -> None:
    im = artwork(130, 70, seed=1)
    write_psd(im, tmp_path / "a.psd")
    with Image.open(tmp_path / "a.psd") as back:
        assert back.format == "PSD" and back.size == (130, 70)
        assert back.convert("RGB").tobytes() == im.tobytes()


@pytest.mark.parametrize(("size", "scale"), [((2000, 1125), 1), ((2480, 3508), 2), ((4032, 3024), 2),
                                             ((6000, 4000), 2), ((8000, 5333), 4), ((12800, 9600), 8)])
def test_jpeg_floor_is_the_smallest_dct_scale_that_still_reaches_the_preview(size, scale) -> None:
    assert jpeg_floor_scale(size, 1600) == scale


def test_ssim_is_one_for_identical_images_and_drops_with_blur_and_noise() -> None:
    im = artwork(200, 150, seed=2)
    a = np.asarray(im)
    assert quality.ssim(a, a) == pytest.approx(1.0)
    blurred = np.asarray(im.filter(ImageFilter.GaussianBlur(2)))
    noisy = np.clip(a.astype(int) + np.random.default_rng(0).integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert quality.ssim(a, blurred) < 0.95 and quality.ssim(a, noisy) < 0.9
    assert quality.psnr(a, a) == float("inf") and quality.psnr(a, blurred) < 40


def test_reference_downscales_in_linear_light(tmp_path) -> None:
    # Alternate black and white columns: in linear light their average is 50 % light, which is sRGB 188,
    # where averaging the encoded values would give 128.
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255
    Image.fromarray(stripes).save(tmp_path / "s.png")
    small = quality.reference(tmp_path / "s.png", (16, 16))
    assert small.shape == (16, 16, 3)
    assert abs(int(np.median(small)) - 188) <= 2


def test_quick_case_yields_three_rows_per_input_and_the_summaries() -> None:
    rows = run(quick=True)
    labels = [r["name"] for r in rows]
    inputs = [s.label for s in QUICK]
    for label in inputs:
        metrics = [r["metric"] for r in rows if r["name"] == label]
        assert metrics == ["first save ÷ decode floor", "repeat save ÷ decode floor",
                           "preview SSIM vs linear-light Lanczos"], label
    assert labels.count("geometric mean") == 2
    alone = {r["metric"]: r for r in rows if r["name"] == PATH_ALONE.label}
    assert set(alone) == {"first save", "repeat save"} and all(r["unit"] == "ms" for r in alone.values())
    for r in rows:  # every artwork save is bounded below by its floor plus what the path alone costs
        if r["metric"].endswith("decode floor") and r["name"] in inputs and not r["name"].startswith("quick HEIC"):
            which = r["metric"].split()[0]
            floor = statistics.median(r["detail"]["floor_ms"])
            assert r["detail"]["reachable"] == pytest.approx((floor + alone[f"{which} save"]["value"]) / floor,
                                                             rel=0.05)
    assert "reachable" not in next(r for r in rows if r["name"] == "quick HEIC")["detail"]
    memory = rows[-1]
    assert memory["name"].startswith("worker peak RSS, worst: ")
    assert set(memory["detail"]["per_input"]) == {s.label for s in QUICK if s.fmt != "heic"}  # HEIC: no worker
    assert memory["detail"]["worker_after_all_mb"] > 0
    for r in rows:
        assert r["case"] == "preview" and r["value"] > 0 and r["target"] is None and r["ok"] is None
        assert r["min"] <= r["value"] <= r["max"]
    for r in rows:
        if r["metric"].endswith("decode floor") and r["name"] != "geometric mean":
            assert len(r["detail"]["save_ms"]) == len(r["detail"]["floor_ms"]) == 1
