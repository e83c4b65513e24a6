"""Benchmark case "preview": preview + thumbnail time as a ratio to the bare decode of the same file.

``run(quick)`` returns one result dict per input (plus the geometric mean and the worker's peak memory)
for the benchmark harness. The **decode floor** is what Pillow needs only to decode the same file in the
same run (a JPEG at half size, since no preview needs more); ``preview`` is ``render_previews`` end to
end (decode, reduce + flatten, sRGB, final resample, watermark, two atomic JPEG writes with fsync).
Floor and preview runs alternate (7 each after a warm-up) and the median of each is used, so drift
(thermal, page cache, other processes) hits both alike. For scale the same harness times a naive Pillow
pipeline and, when a real ImageMagick ``convert`` is installed, ImageMagick.

Inputs are generated once into ``bench/.data/`` (git-ignored): smooth gradients, shapes and low-amplitude
noise, compressed like the tools that make them would (PNG zlib level 6, JPEG q92, layered TIFF with LZW
like Photoshop's usual choice, PSD with a PackBits/RLE composite like Photoshop's). ``quick=True`` uses
tiny sizes and one run so a test can exercise the harness in seconds; its numbers mean nothing.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from kaalwatch.imaging import PreviewSpec, render_previews, watermark_text  # noqa: E402
from kaalwatch.imaging.watermark import WatermarkSpec, watermark_layer  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
TARGET_EACH = 1.5
TARGET_GEOMEAN = 1.3
TARGET_RSS_FACTOR = 2.0

# name -> (generator, full size, quick size)
_FULL = {"png_rgba": (4000, 4000), "png_rgb": (8000, 8000), "jpeg": (6000, 4000), "tiff": (6000, 6000),
         "psd": (4000, 4000)}
_QUICK = {"png_rgba": (320, 320), "png_rgb": (400, 400), "jpeg": (480, 320), "tiff": (360, 360),
          "psd": (320, 320)}
_LABEL = {"png_rgba": "{w}² RGBA PNG", "png_rgb": "{w}² RGB PNG", "jpeg": "{w}×{h} JPEG",
          "tiff": "{w}² layered TIFF", "psd": "{w}² PSD"}


# ----------------------------------------------------------------------------------------------------
# Realistic inputs


def _artwork(w: int, h: int, seed: int, alpha: bool = False) -> Image.Image:
    """Gradients + shapes + low-amplitude noise: compresses like painted art, not like flat colour."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = Image.merge("RGB", [
        Image.fromarray((40 + 170 * x * (1 - 0.3 * y)).astype(np.uint8)),
        Image.fromarray((60 + 150 * y + 0 * x).astype(np.uint8)),
        Image.fromarray((200 - 140 * (x * y)).astype(np.uint8)),
    ])
    draw = ImageDraw.Draw(base)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        rw, rh = int(rng.integers(w // 30 + 1, w // 4 + 2)), int(rng.integers(h // 30 + 1, h // 4 + 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + rw, y0 + rh), fill=colour)
        else:
            draw.line((x0, y0, x0 + rw, y0 + rh), fill=colour, width=max(1, w // 200))
    # Brush/paper texture: +-6 levels of noise, added band by band to keep memory modest.
    arr = np.asarray(base).copy()
    del base
    step = 512
    for top in range(0, h, step):
        noise = rng.integers(-6, 7, size=arr[top:top + step].shape, dtype=np.int16)
        arr[top:top + step] = np.clip(arr[top:top + step].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if alpha:
        a = Image.new("L", (w, h), 0)
        ImageDraw.Draw(a).ellipse((w * 0.05, h * 0.05, w * 0.95, h * 0.95), fill=255)
        im.putalpha(a)
    return im


def _packbits_rows(channel: Image.Image) -> list[bytes]:
    """PackBits-encode each row of an L image, using libtiff's encoder through a one-row-per-strip TIFF."""
    buf = io.BytesIO()
    channel.save(buf, "TIFF", compression="packbits", strip_size=channel.width)
    buf.seek(0)
    with Image.open(buf) as tif:
        offsets = tif.tag_v2[273]
        counts = tif.tag_v2[279]
    raw = buf.getvalue()
    rows = [raw[o:o + c] for o, c in zip(offsets, counts, strict=True)]
    if len(rows) != channel.height:
        raise RuntimeError("libtiff did not write one strip per row")
    return rows


def write_psd(im: Image.Image, path: Path, *, rle: bool = True, has_composite: bool = True) -> Path:
    """Write a minimal valid 8-bit RGB(A) PSD holding only the merged composite (no layers).

    Sections: header, empty colour-mode data, image resources (only 1057 version info, which says
    whether the composite is real), an empty layer-and-mask section, then the image data, RLE
    (PackBits per row with a table of row byte counts, as Photoshop writes it) or raw.
    """
    channels = im.split()
    w, h = im.size
    out = io.BytesIO()
    out.write(b"8BPS" + struct.pack(">H6xHIIHH", 1, len(channels), h, w, 8, 3))
    out.write(struct.pack(">I", 0))
    # version, hasRealMergedData, empty writer and reader names, file version (17 bytes, padded below)
    version_info = struct.pack(">IBIII", 1, 1 if has_composite else 0, 0, 0, 1)
    resource = b"8BIM" + struct.pack(">H", 1057) + b"\x00\x00" + struct.pack(">I", len(version_info))
    resource += version_info + (b"\x00" if len(version_info) % 2 else b"")
    out.write(struct.pack(">I", len(resource)) + resource)
    out.write(struct.pack(">I", 0))
    if rle:
        all_rows = [_packbits_rows(c) for c in channels]
        out.write(struct.pack(">H", 1))
        for rows in all_rows:
            out.write(struct.pack(f">{len(rows)}H", *(len(r) for r in rows)))
        for rows in all_rows:
            out.write(b"".join(rows))
    else:
        out.write(struct.pack(">H", 0))
        for c in channels:
            out.write(c.tobytes())
    path.write_bytes(out.getvalue())
    return path


def make_input(key: str, size: tuple[int, int], directory: Path) -> Path:
    """Generate (once) the input file for ``key`` at ``size``; returns its path."""
    w, h = size
    directory.mkdir(parents=True, exist_ok=True)
    ext = {"png_rgba": "png", "png_rgb": "png", "jpeg": "jpg", "tiff": "tif", "psd": "psd"}[key]
    path = directory / f"{key}_{w}x{h}.{ext}"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp" + path.suffix)
    if key == "png_rgba":
        _artwork(w, h, 1, alpha=True).save(tmp, "PNG")
    elif key == "png_rgb":
        _artwork(w, h, 2).save(tmp, "PNG")
    elif key == "jpeg":
        _artwork(w, h, 3).save(tmp, "JPEG", quality=92)
    elif key == "tiff":
        composite = _artwork(w, h, 4)
        layers = [_artwork(w, h, 5, alpha=True), _artwork(w, h, 6, alpha=True)]
        composite.save(tmp, "TIFF", compression="tiff_lzw", save_all=True, append_images=layers)
    elif key == "psd":
        write_psd(_artwork(w, h, 7), tmp)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------------------
# The pipelines being compared


def decode_floor(path: Path) -> None:
    """Only decode: what any preview must at least pay (JPEG at half size: no preview needs more)."""
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (im.width // 2, im.height // 2))
        im.load()


def _ours(spec: PreviewSpec, text: str, out: Path) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        render_previews(path, out / "p.jpg", out / "t.jpg", spec, text)
    return run


def _naive(spec: PreviewSpec, text: str, out: Path) -> Callable[[Path], None]:
    """The obvious Pillow pipeline: open, RGBA, Lanczos, composite an RGBA watermark, save (x2)."""

    def run(path: Path) -> None:
        with Image.open(path) as src:
            im = src.convert("RGBA")
        for edge, name in ((spec.long_edge, "np.jpg"), (spec.thumb_edge, "nt.jpg")):
            small = im.copy()
            small.thumbnail((edge, edge), Image.Resampling.LANCZOS, reducing_gap=None)
            colour, mask = watermark_layer(small.size, spec.watermark, text, "RGB")
            layer = colour.convert("RGBA")
            layer.putalpha(mask)
            flat = Image.new("RGBA", small.size, (255, 255, 255, 255))
            flat.alpha_composite(small)
            flat.alpha_composite(layer)
            flat.convert("RGB").save(out / name, "JPEG", quality=spec.jpeg_quality)
    return run


def imagemagick() -> str | None:
    """The path of a real, working ImageMagick ``convert`` (stand-ins that cannot resize are refused)."""
    exe = shutil.which("magick") or shutil.which("convert")
    if not exe:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "a.png", Path(tmp) / "b.jpg"
        Image.new("RGB", (64, 48), (10, 200, 30)).save(src)
        try:
            proc = subprocess.run([exe, str(src), "-resize", "32x32", str(dst)], capture_output=True,
                                  timeout=30, check=False)
            ok = proc.returncode == 0 and dst.exists()
            if ok:
                with Image.open(dst) as im:
                    ok = im.size == (32, 24)
        except (OSError, subprocess.SubprocessError):
            ok = False
    return exe if ok else None


def _imagemagick_run(exe: str, spec: PreviewSpec, out: Path) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        src = f"{path}[0]"
        e = spec.long_edge
        subprocess.run([exe, src, "-background", "white", "-flatten", "-resize", f"{e}x{e}>",
                        "-quality", str(spec.jpeg_quality), "-write", str(out / "mp.jpg"),
                        "-resize", f"{spec.thumb_edge}x{spec.thumb_edge}>", str(out / "mt.jpg")],
                       check=True, capture_output=True)
    return run


# ----------------------------------------------------------------------------------------------------
# Measurement


def _median_ms(fns: dict[str, Callable[[Path], None]], path: Path, runs: int) -> dict[str, list[float]]:
    """Warm up each function once, then run them interleaved ``runs`` times; times in ms."""
    for fn in fns.values():
        fn(path)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn(path)
            times[key].append((time.perf_counter() - t0) * 1000)
    return times


_CHILD = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from kaalwatch.imaging import PreviewSpec, render_previews, watermark_text
from kaalwatch.imaging.pool import _init_worker

def status(key):
    # VmHWM belongs to this address space (fresh at exec); ru_maxrss would inherit the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

_init_worker()
spec = PreviewSpec()
text = watermark_text(spec.watermark.template, {"shop": "Kaal Studio", "receipt_id": "3141592653"})
baseline = status("VmRSS")
render_previews(Path(sys.argv[2]), Path(sys.argv[3]) / "p.jpg", Path(sys.argv[3]) / "t.jpg", spec, text)
print(json.dumps({"baseline_kb": baseline, "peak_kb": status("VmHWM")}))
"""


def worker_peak_rss(path: Path, out: Path) -> dict[str, float]:
    """Peak RSS (MB) of a fresh worker-like process rendering ``path`` once, and its idle baseline.

    The peak is the process's whole high-water mark (interpreter, Pillow, fonts included), not just
    the render's increment: that is what the machine has to have free per worker.
    """
    if not Path("/proc/self/status").exists():  # pragma: no cover - Linux only
        return {"baseline_mb": float("nan"), "peak_mb": float("nan")}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), str(path), str(out)],
                          capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"baseline_mb": data["baseline_kb"] / 1024, "peak_mb": data["peak_kb"] / 1024}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure every input; one dict per input, then the geometric mean and the worker memory check."""
    sizes = _QUICK if quick else _FULL
    runs = 1 if quick else 7  # floor and preview, interleaved
    other_runs = 1 if quick else 3  # the slow comparison pipelines: for scale only
    directory = DATA / ("quick" if quick else "full")
    spec = PreviewSpec(watermark=WatermarkSpec())
    text = watermark_text(spec.watermark.template, {"shop": "Kaal Studio", "receipt_id": "3141592653"})
    magick = imagemagick()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kw-bench-") as tmp:
        out = Path(tmp)
        fns: dict[str, Callable[[Path], None]] = {"floor": decode_floor, "preview": _ours(spec, text, out)}
        others: dict[str, Callable[[Path], None]] = {"naive": _naive(spec, text, out)}
        if magick:
            others["imagemagick"] = _imagemagick_run(magick, spec, out)
        for key, size in sizes.items():
            path = make_input(key, size, directory)
            times = _median_ms(fns, path, runs)
            times.update(_median_ms(others, path, other_runs))
            med = {k: statistics.median(v) for k, v in times.items()}
            ratios = [p / f for p, f in zip(times["preview"], times["floor"], strict=True)]
            value = med["preview"] / med["floor"]
            rss = worker_peak_rss(path, out)
            results.append({
                "case": "preview",
                "name": _LABEL[key].format(w=size[0], h=size[1]),
                "metric": "ratio to decode floor",
                "value": round(value, 3),
                "unit": "×",
                "target": TARGET_EACH,
                "ok": value <= TARGET_EACH,
                "min": round(min(ratios), 3),
                "max": round(max(ratios), 3),
                "detail": {
                    "floor_ms": round(med["floor"], 1),
                    "preview_ms": round(med["preview"], 1),
                    "naive_ms": round(med["naive"], 1),
                    "naive_ratio": round(med["naive"] / med["floor"], 2),
                    "imagemagick_ms": round(med["imagemagick"], 1) if magick else None,
                    "imagemagick_ratio": round(med["imagemagick"] / med["floor"], 2) if magick else None,
                    "peak_rss_mb": round(rss["peak_mb"], 1),
                    "runs": runs,
                    "comparison_runs": other_runs,
                    "file_mb": round(path.stat().st_size / 1e6, 1),
                },
            })
        geo = math.exp(statistics.fmean(math.log(r["value"]) for r in results))
        results.append({
            "case": "preview", "name": "geometric mean", "metric": "ratio to decode floor",
            "value": round(geo, 3), "unit": "×", "target": TARGET_GEOMEAN, "ok": geo <= TARGET_GEOMEAN,
            "min": min(r["value"] for r in results), "max": max(r["value"] for r in results),
            "detail": {"inputs": len(results), "imagemagick": magick},
        })
        key = "png_rgb"
        w, h = sizes[key]
        path = make_input(key, sizes[key], directory)
        rss = worker_peak_rss(path, out)
        decoded_mb = w * h * 3 / 2**20
        factor = rss["peak_mb"] / decoded_mb
        results.append({
            "case": "preview", "name": f"worker peak RSS, {_LABEL[key].format(w=w, h=h)}",
            "metric": "peak RSS / decoded image (w·h·3 bytes)", "value": round(factor, 3), "unit": "×",
            "target": TARGET_RSS_FACTOR, "ok": factor <= TARGET_RSS_FACTOR,
            "min": round(factor, 3), "max": round(factor, 3),
            "detail": {"peak_rss_mb": round(rss["peak_mb"], 1), "baseline_rss_mb": round(rss["baseline_mb"], 1),
                       "decoded_mb": round(decoded_mb, 1)},
        })
    return results


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row, ensure_ascii=False))
