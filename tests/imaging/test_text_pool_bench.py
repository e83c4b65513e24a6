"""Hostile watermark text, PNG layouts and oddities, the worker pool and the benchmark harness."""

from __future__ import annotations

import struct
import unicodedata
import zlib
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from kaalwatch.errors import ConfigError, ImageError
from kaalwatch.imaging import (
    FileKind,
    PreviewPool,
    PreviewSpec,
    RenderResult,
    WatermarkSpec,
    render_previews,
    watermark_text,
)
from kaalwatch.imaging.complete import incomplete
from kaalwatch.imaging.watermark import DEFAULT_TEMPLATE, MAX_FIELD_CHARS, MAX_TEXT_CHARS
from kaalwatch.naming import clean_text
from tests.support.polling import wait_for

from .conftest import artwork, png_bytes

# ------------------------------------------------------------------------------------------ template


def test_known_keys_are_substituted() -> None:
    text = watermark_text(DEFAULT_TEMPLATE, {"shop": "Kaal Studio", "receipt_id": "3141592"})
    assert text == "PROOF — not for print · Kaal Studio · #3141592"


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("{buyer_first_name}", {"buyer_first_name": "{{7*7}}"}, "{{7*7}}"),
        ("{buyer_first_name}", {"buyer_first_name": "{shop}", "shop": "S"}, "{shop}"),
        ("{receipt_id.__class__}", {"receipt_id": "1"}, "{receipt_id.__class__}"),
        ("{receipt_id!r:>10}", {"receipt_id": "1"}, "{receipt_id!r:>10}"),
        ("{__import__}", {}, "{__import__}"),
        ("{unknown} {shop}", {"shop": "S"}, "{unknown} S"),
        ("{{shop}}", {"shop": "S"}, "{S}"),
        ("Hi {buyer_first_name}", {"buyer_first_name": "%s%n${jndi:x}"}, "Hi %s%n${jndi:x}"),
    ],
)
def test_template_syntax_is_never_evaluated(template: str, fields: dict, expected: str) -> None:
    assert watermark_text(template, fields) == expected


def test_control_and_bidi_characters_are_stripped_and_length_capped() -> None:
    hostile = "Ann\u202eevil\u200b\x00\x1b[31m\nMarie" + "x" * 500
    text = watermark_text("{buyer_first_name} · {shop}", {"buyer_first_name": hostile, "shop": "S"})
    assert "\u202e" not in text and "\x00" not in text and "\x1b" not in text and "\n" not in text
    name = text.split(" · ")[0]
    assert name.startswith("Anneviln[31m Marie") or name.startswith("Annevil[31m Marie")
    assert len(name) <= MAX_FIELD_CHARS and name.endswith("…")


def test_missing_known_key_leaves_no_braces_or_dangling_separators() -> None:
    assert watermark_text(DEFAULT_TEMPLATE, {"shop": "S"}) == "PROOF — not for print · S"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_any_buyer_text_gives_a_clean_bounded_line(name: str, shop: str) -> None:
    text = watermark_text("{buyer_first_name} {shop} {receipt_id}", {"buyer_first_name": name, "shop": shop})
    assert len(text) <= MAX_TEXT_CHARS
    assert all(unicodedata.category(ch)[0] != "C" for ch in text)
    assert text == clean_text(text, MAX_TEXT_CHARS, ellipsis=True)


@pytest.mark.parametrize(
    "kwargs", [{"opacity": 1.5}, {"opacity": -0.1}, {"size": 0}, {"color": "not-a-colour"},
               {"font_path": "/nonexistent/font.ttf"}, {"line_spacing": 0.5}],
)
def test_bad_watermark_settings_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        WatermarkSpec(**kwargs)


def test_bad_preview_settings_are_config_errors() -> None:
    for kwargs in ({"long_edge": 0}, {"thumb_edge": 5000}, {"jpeg_quality": 100}, {"background": "nope"}):
        with pytest.raises(ConfigError):
            PreviewSpec(**kwargs)


# ------------------------------------------------------------------------------ PNG layouts and oddities
# Through what the watcher runs on a save: the completeness rule, then the preview worker's render.


def _png_variant(tmp_path: Path, name: str, im: Image.Image, **save: object) -> Path:
    path = tmp_path / name
    im.save(path, "PNG", **save)
    return path


def _render(path: Path) -> RenderResult:
    out = path.parent / "out"
    return render_previews(path, out / f"{path.stem}.jpg", out / f"{path.stem}-t.jpg", PreviewSpec(), "x")


def test_every_png_layout_is_complete_and_renders(tmp_path: Path) -> None:
    samples = [
        _png_variant(tmp_path, "rgb.png", artwork(97, 61)),
        _png_variant(tmp_path, "rgba.png", artwork(97, 61, alpha=True)),
        _png_variant(tmp_path, "pal.png", artwork(97, 61).convert("P")),
        _png_variant(tmp_path, "grey16.png", artwork(97, 61).convert("I;16")),
        _png_variant(tmp_path, "bw.png", artwork(97, 61).convert("1")),
        _png_variant(tmp_path, "la.png", artwork(33, 21, alpha=True).convert("LA")),
    ]
    for path in samples:
        assert incomplete(path) is None, path.name
        result = _render(path)
        assert result.source_kind is FileKind.RASTER and result.preview_path is not None, path.name


def test_interlaced_png_renders(tmp_path: Path) -> None:
    # Pillow cannot write Adam7; tests/samples holds a tiny interlaced PNG made for this test.
    sample = Path(__file__).resolve().parent.parent / "samples" / "interlaced.png"
    with Image.open(sample) as im:
        assert im.info.get("interlace") == 1
        size = im.size
    assert incomplete(sample) is None
    result = render_previews(sample, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(), "x")
    assert (result.width, result.height) == size


def test_png_whose_data_inflates_past_its_header_decodes_only_the_header_size(tmp_path: Path) -> None:
    # A 4 x 4 greyscale header over 10 kB of scanlines: the decoder stops at the header's size, so a
    # stream that claims little and inflates to much never grows the worker's memory.
    big = zlib.compress(b"\x00" * 10_000)
    chunk = b"IDAT" + big
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
           + struct.pack(">I", len(big)) + chunk + struct.pack(">I", zlib.crc32(chunk))
           + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    over = tmp_path / "over.png"
    over.write_bytes(png)
    assert incomplete(over) is None
    assert (_render(over).width, _render(over).height) == (4, 4)


def test_png_with_a_wrong_data_checksum_renders_the_pixels_it_holds(tmp_path: Path) -> None:
    # Only the stored CRC is damaged, the data inflates whole: the preview shows exactly those pixels
    # (the decoder does not check pixel-data CRCs; a cut-off file is caught by the completeness rule).
    data = bytearray(png_bytes(artwork(50, 40)))
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4:idat])
    data[idat + 4 + length] ^= 0xFF
    bad = tmp_path / "crc.png"
    bad.write_bytes(bytes(data))
    result = _render(bad)
    assert (result.width, result.height) == (50, 40)


def test_png_missing_its_end_is_still_being_written(tmp_path: Path) -> None:
    data = png_bytes(artwork(50, 40))
    cut = tmp_path / "noend.png"
    cut.write_bytes(data[: data.index(b"IEND") - 4])
    assert incomplete(cut) == "ends without its IEND chunk"
    cut.write_bytes(data[: len(data) // 2])
    assert incomplete(cut)
    with pytest.raises(ImageError, match="truncated"):
        _render(cut)


# ---------------------------------------------------------------------------------------------- pool


def test_pool_renders_in_worker_processes_and_reports_errors(tmp_path: Path) -> None:
    good = tmp_path / "a.png"
    artwork(900, 600).save(good)
    bad = tmp_path / "b.png"
    bad.write_bytes(png_bytes(artwork(300, 200))[:500])
    out = tmp_path / "out"
    spec = PreviewSpec()
    with PreviewPool(workers=2) as pool:
        assert pool.workers == 2 and pool.max_pending == 4
        futures = [pool.submit(good, out / f"p{i}.jpg", out / f"t{i}.jpg", spec, "PROOF") for i in range(3)]
        failing = pool.submit(bad, out / "pb.jpg", out / "tb.jpg", spec, "PROOF")
        results = [f.result(timeout=60) for f in futures]
        with pytest.raises(ImageError, match="truncated"):
            failing.result(timeout=60)
    assert all(r.preview_size == (900, 600) for r in results)
    assert sorted(p.name for p in out.iterdir()) == ["p0.jpg", "p1.jpg", "p2.jpg", "t0.jpg", "t1.jpg", "t2.jpg"]
    with pytest.raises(RuntimeError):
        pool.submit(good, out / "x.jpg", out / "y.jpg", spec, "PROOF")


def test_pool_shutdown_lets_queued_work_finish(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    artwork(1200, 800).save(src, quality=90)
    pool = PreviewPool(workers=1, max_pending=3)
    futures = [pool.submit(src, tmp_path / f"p{i}.jpg", tmp_path / f"t{i}.jpg", PreviewSpec(), "X")
               for i in range(3)]
    pool.shutdown(wait=True)
    assert all(f.done() and f.exception() is None for f in futures)


def test_pool_recovers_after_a_worker_dies(tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    artwork(200, 100).save(src)
    with PreviewPool(workers=1) as pool:
        pool.submit(src, tmp_path / "p.jpg", tmp_path / "t.jpg", PreviewSpec(), "X").result(timeout=60)
        for proc in list(pool._executor._processes.values()):  # simulate the OOM killer
            proc.kill()
            proc.join()
        future = pool.submit(src, tmp_path / "p2.jpg", tmp_path / "t2.jpg", PreviewSpec(), "X")
        try:
            future.result(timeout=60)
        except BrokenProcessPool:
            # The submit raced the breakage; the next one must get a fresh pool.
            pool.submit(src, tmp_path / "p2.jpg", tmp_path / "t2.jpg", PreviewSpec(), "X").result(timeout=60)
    assert (tmp_path / "p2.jpg").exists()


def _spawned_workers() -> set[int]:
    return {p.pid for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())}


def test_warm_starts_every_worker_before_the_first_render(tmp_path: Path) -> None:
    before = _spawned_workers()
    src = tmp_path / "a.png"
    artwork(200, 100).save(src)
    with PreviewPool(workers=2) as pool:
        assert _spawned_workers() == before  # on demand: a pool that never renders costs no processes
        pool.warm()
        pool.warm()  # once per pool: no extra processes
        wait_for(lambda: len(_spawned_workers() - before) == 2, 60, what="both workers to start")
        started = _spawned_workers() - before
        futures = [pool.submit(src, tmp_path / f"p{i}.jpg", tmp_path / f"t{i}.jpg", PreviewSpec(), "X")
                   for i in range(4)]
        assert all(f.result(timeout=60).preview_size == (200, 100) for f in futures)
        assert _spawned_workers() - before == started  # the renders ran on the warmed workers
