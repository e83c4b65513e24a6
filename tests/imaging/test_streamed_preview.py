"""A JPEG's preview watermarked and encoded band by band while the decode goes on (``preview._StreamedPreview``
fed by ``jpeg_rows``' sink, written by ``jpeg_bands``).

The streamed preview must be the preview of the whole path, pixel for pixel (watermark, thumbnail and
all), and the sources whose rows still change after the decode (a turned phone photo, a wide-gamut
profile) must not be streamed at all.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kaalwatch.imaging import jpeg_rows, preview
from kaalwatch.imaging.jpeg_rows import decode_resampled
from kaalwatch.imaging.preview import PreviewSpec, render_previews
from kaalwatch.imaging.watermark import WatermarkSpec, watermark_layer
from tests.support.browser import ARGS, CHROMIUM

from .conftest import artwork, icc_swapped_primaries
from .test_jpeg_rows import jpeg, opened

BILINEAR = Image.Resampling.BILINEAR


def restarts(path: Path) -> bool:
    """Whether the JPEG's header has a restart interval (DRI): what a streamed preview has."""
    data = path.read_bytes()
    pos = 2
    while data[pos + 1] != 0xDA:  # up to the scan
        if data[pos + 1] == 0xDD:
            return True
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def render_both(src: Path, out: Path, spec: PreviewSpec, text: str,
                monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """The streamed render and the whole-path render (the sink refused) of ``src``."""
    streamed = (out / "s.jpg", out / "s-t.jpg")
    render_previews(src, *streamed, spec, text)
    with monkeypatch.context() as m:
        m.setattr(preview._StreamedPreview, "start", lambda self, size, orientation, icc: None)
        whole = (out / "w.jpg", out / "w-t.jpg")
        render_previews(src, *whole, spec, text)
    return streamed, whole


@pytest.mark.parametrize(("size", "outline"), [((2000, 1125), True), ((2400, 3400), False), ((1700, 1700), True),
                                               ((3300, 900), True)])
def test_a_streamed_preview_is_the_whole_paths_preview(tmp_path: Path, size: tuple[int, int], outline: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = jpeg(tmp_path / "art.jpg", artwork(*size, seed=size[0]))
    spec = PreviewSpec(watermark=WatermarkSpec(outline=outline))
    (preview_s, thumb_s), (preview_w, thumb_w) = render_both(src, tmp_path, spec, "PROOF 3141592653 v1",
                                                             monkeypatch)
    assert restarts(preview_s) and not restarts(preview_w)
    assert np.array_equal(decoded(preview_s), decoded(preview_w))
    assert np.array_equal(decoded(thumb_s), decoded(thumb_w))
    # and the watermark is in it: the unmarked preview differs
    render_previews(src, tmp_path / "u.jpg", tmp_path / "u-t.jpg", PreviewSpec(watermark=WatermarkSpec(enabled=False)),
                    "PROOF 3141592653 v1")
    assert np.abs(decoded(preview_s).astype(int) - decoded(tmp_path / "u.jpg")).max() > 60


def test_turned_and_wide_gamut_jpegs_are_not_streamed_and_come_out_right(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = jpeg(tmp_path / "turned.jpg", artwork(2200, 1400, seed=6), exif=exif)
    render_previews(turned, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(), "PROOF 1")
    assert not restarts(tmp_path / "p.jpg")
    with Image.open(tmp_path / "p.jpg") as p:
        assert p.size == (1018, 1600)
    wide = jpeg(tmp_path / "wide.jpg", Image.new("RGB", (2200, 1400), (255, 0, 0)),
                icc_profile=icc_swapped_primaries())
    render_previews(wide, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(watermark=WatermarkSpec(enabled=False)),
                    "")
    assert not restarts(tmp_path / "p.jpg")
    r, g, b = Image.open(tmp_path / "p.jpg").convert("RGB").getpixel((800, 500))
    assert g > 200 and r < 60 and b < 60  # red under that profile is sRGB green


def test_the_sink_gets_each_band_once_with_its_final_rows(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(2000, 1125, seed=8))
    calls: list[tuple[int, int, bytes]] = []
    lock = threading.Lock()

    def sink(out: Image.Image, top: int, bottom: int) -> None:
        rows = out.crop((0, top, out.width, bottom)).tobytes()
        with lock:
            calls.append((top, bottom, rows))

    with opened(path, 1600) as im:
        got = decode_resampled(im, (1600, 900), BILINEAR, 64, 4096, sink=sink)
    assert got is not None
    assert sorted((top, bottom) for top, bottom, _ in calls) == [(t, min(900, t + 64)) for t in range(0, 900, 64)]
    for top, bottom, rows in calls:  # what the sink saw is what the image ends with: the rows were final
        assert rows == got.crop((0, top, 1600, bottom)).tobytes()


def test_what_the_sink_raises_is_raised_by_the_decode(tmp_path: Path) -> None:
    path = jpeg(tmp_path / "a.jpg", artwork(1800, 1000, seed=9))

    def sink(out: Image.Image, top: int, bottom: int) -> None:
        if top >= 128:
            raise OSError("no space left on device")

    with opened(path, 1600) as im, pytest.raises(OSError, match="no space left"):
        decode_resampled(im, (1600, 889), BILINEAR, jpeg_rows.BAND_ROWS, 4096, sink=sink)


def test_a_streamed_preview_whose_thumbnail_fails_replaces_nothing(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    src = jpeg(tmp_path / "art.jpg", artwork(2000, 1200, seed=10))
    outputs = (tmp_path / "p.jpg", tmp_path / "t.jpg")
    render_previews(src, *outputs, PreviewSpec(), "PROOF one")
    before = [p.read_bytes() for p in outputs]
    real_save = Image.Image.save

    def thumbnail_fails(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if self.size == (400, 240):
            raise OSError("disk full")
        real_save(self, fp, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", thumbnail_fails)
    with pytest.raises(OSError, match="disk full"):
        render_previews(src, *outputs, PreviewSpec(), "PROOF two")
    assert [p.read_bytes() for p in outputs] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.jpg", "p.jpg", "t.jpg"]


def test_a_layer_asked_for_while_another_thread_builds_it_is_built_once() -> None:
    spec = WatermarkSpec()
    watermark_layer.cache_clear()
    gate = threading.Barrier(3)
    got: list[object] = []

    def ask() -> None:
        gate.wait()
        got.append(watermark_layer((1600, 1067), spec, "PROOF shared", "RGB"))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    info = watermark_layer.cache_info()
    assert info.misses == 1 and info.hits == 2
    assert got[0] is got[1] is got[2]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium")
def test_chromium_shows_a_streamed_preview_as_the_whole_paths_preview(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner sees previews in a browser: its decoder must read the restart markers as meant, so it shows
    the pixels of the preview encoded whole (a decoder that resyncs on a wrong marker would not)."""
    from playwright.sync_api import sync_playwright

    src = jpeg(tmp_path / "art.jpg", artwork(2000, 1300, seed=12))
    (streamed, _), (whole, _) = render_both(src, tmp_path, PreviewSpec(), "PROOF 1234567890 v2", monkeypatch)
    assert restarts(streamed)
    data = base64.b64encode(streamed.read_bytes()).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            shown = page.evaluate("""async (src) => {
                const img = new Image();
                img.src = src;
                await img.decode();
                const canvas = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
                canvas.getContext("2d", {colorSpace: "srgb"}).drawImage(img, 0, 0);
                const png = await canvas.convertToBlob({type: "image/png"});
                return await new Promise((done) => {
                    const reader = new FileReader();
                    reader.onload = () => done(reader.result);
                    reader.readAsDataURL(png);
                });
            }""", f"data:image/jpeg;base64,{data}")
        finally:
            browser.close()
    with Image.open(io.BytesIO(base64.b64decode(shown.split(",", 1)[1]))) as canvas:
        assert canvas.size == (1600, 1040)
        seen = np.asarray(canvas.convert("RGB")).astype(int)
    pillow = decoded(whole).astype(int)
    difference = np.abs(seen - pillow)
    # Both use libjpeg-turbo; a browser may upsample chroma its own way, never lose a band.
    assert difference.max() <= 8 and difference.mean() < 1.0
    band_means = difference.reshape(-1, 16, 1600, 3).mean(axis=(1, 2, 3))
    assert band_means.max() < 2.0
