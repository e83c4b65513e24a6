"""Benchmark case "preview": what a save costs, end to end, as a ratio to the bare decode of the same file.

For every input (``bench.inputs``: JPEG from 2000 to 8000 px in phone, camera, A4/A3-at-300-dpi and wide
shapes, 8- and 16-bit PNG with and without alpha, PSD and layered TIFF at two sizes, Krita, OpenRaster,
HEIC) three things are measured, interleaved ``RUNS`` times after one untimed warm-up:

* the **decode floor**: Pillow only decoding the file, in the benchmark process. A JPEG is decoded at the
  smallest DCT scale (1/1, 1/2, 1/4, 1/8) whose long edge still reaches the preview's: no preview of
  that size can decode less. Everything else is a full decode (a Krita/OpenRaster file: reading its
  ``mergedimage.png`` from the ZIP, then decoding it);
* a **first save of a new order**: a new order folder, so a new receipt id in the watermark text and a
  watermark layer no worker has built; the artist's file is written (untimed), then ``Ingestor.ingest``
  is timed: manifest read; the staging copy with its SHA-256 and fsync and, side by side with it, the
  hand-off to the real ``PreviewPool`` worker process and the render there (decode, reduce, resample,
  watermark, thumbnail, two atomic JPEG writes); the version's rename and the manifest write;
* a **repeat save** in one order per input: new bytes of the same file, the same watermark text, with an
  mtime a quiet period after the last one's, as the watcher's quiet period makes every real re-save
  (back to back and the same size, it would pass for a renamed version, which is hashed before it is
  rendered: the path of a tidy-up, not of a save).

The **save path alone**: a 64×48 JPEG saved the same two ways, first, before any input. Its save is what
the path costs whatever the file (the manifest read, the staging copy, the hand-off, two fsynced preview
writes, the version's rename, the manifest write). Every save of an input pays at least its decode floor
and that, so each ratio row's detail has ``reachable`` = (floor + path alone) / floor: the lowest ratio
this path could reach on the input if its render cost nothing but the decode.

HEIC is what phones send as buyer references, never artwork, so its path is the reference one: a photo
dropped into ``references/`` (hash, 400 px thumbnail in the watcher's process, manifest), into a new order
("first") or beside earlier ones ("repeat").

The value is median(save) / median(floor), min and max are the extremes of the per-run ratios. Targets
(issue #19): each ≤ 1.5, geometric mean ≤ 1.3, first and repeat save alike.

**Quality** next to speed: each input's preview pixels, without watermark, as the pipeline hands them to
the JPEG encoder, against the linear-light Lanczos downscale of the full-resolution decode
(``bench.quality``): SSIM on luma, floor 0.98, PSNR in the detail. The detail also has the SSIM of the
JPEG file written, and of the reference itself encoded at the preview's JPEG quality: on painted texture
q85 alone costs about 0.02, whatever the pipeline, so the floor is applied before the encoder.

**Memory**: after every input has been timed, the same long-lived worker (a one-worker pool, so it is the
one that rendered everything) renders each input once more; its peak RSS is reset before each render
(``/proc/PID/clear_refs``) and read after. The value is (peak − the worker's RSS just before) / the
decoded image (w·h·3 bytes, w·h·4 with alpha: Pillow itself holds RGB in 4 bytes a pixel, so this is
the stricter measure). The worker's idle RSS, fresh and after all inputs, is in the detail, so memory a
render keeps is visible too. HEIC is left out: it is only ever a buyer reference, thumbnailed in the
watcher's process, never in a worker.

``quick=True`` uses tiny sizes and one run, so a test can exercise the case in seconds; its numbers mean
nothing and its rows carry no targets.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench import quality  # noqa: E402
from bench.harness import geometric_mean, row  # noqa: E402
from bench.inputs import Input, make, save_variant  # noqa: E402
from kaalwatch.imaging import PreviewPool, PreviewSpec, WatermarkSpec, classify, render_previews  # noqa: E402
from kaalwatch.imaging.preview import _prepare  # noqa: E402 - the pixels before watermark and encoding
from kaalwatch.model import Job, Order  # noqa: E402
from kaalwatch.settings import Settings, load_settings  # noqa: E402
from kaalwatch.store import REFERENCES, Workspace  # noqa: E402
from kaalwatch.watch import ingest as ingest_module  # noqa: E402
from kaalwatch.watch.ingest import Ingestor, preview_spec  # noqa: E402
from kaalwatch.watch.seen import SeenStore  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
RUNS = 7
TARGET_EACH = 1.5
TARGET_GEOMEAN = 1.3
TARGET_RSS_FACTOR = 2.0
SSIM_FLOOR = 0.98

FULL = [
    Input("2000×1125 JPEG (16:9)", "jpeg", (2000, 1125), seed=11),
    Input("A4 300 dpi JPEG 2480×3508", "jpeg", (2480, 3508), seed=12),
    Input("phone JPEG 4032×3024", "jpeg", (4032, 3024), seed=13),
    Input("A3 300 dpi JPEG 3508×4961", "jpeg", (3508, 4961), seed=14),
    Input("DSLR JPEG 5184×3888", "jpeg", (5184, 3888), seed=15),
    Input("6000×4000 JPEG", "jpeg", (6000, 4000), seed=16),
    Input("8000×5333 JPEG", "jpeg", (8000, 5333), seed=17),
    Input("2500×3500 RGB PNG", "png", (2500, 3500), seed=21),
    Input("4000² RGBA PNG", "png", (4000, 4000), alpha=True, seed=22),
    Input("8000² RGB PNG", "png", (8000, 8000), seed=23),
    Input("3000×4000 16-bit RGB PNG", "png16", (3000, 4000), seed=24),
    Input("5000² 16-bit RGBA PNG", "png16", (5000, 5000), alpha=True, seed=25),
    Input("3000×4000 PSD", "psd", (3000, 4000), seed=31),
    Input("6000² PSD", "psd", (6000, 6000), seed=32),
    Input("4000×3000 layered TIFF", "tiff", (4000, 3000), seed=41),
    Input("6000² layered TIFF", "tiff", (6000, 6000), seed=42),
    Input("4000² Krita .kra", "kra", (4000, 4000), seed=51),
    Input("3000×4000 OpenRaster .ora", "ora", (3000, 4000), seed=52),
    Input("phone HEIC 4032×3024 (buyer reference)", "heic", (4032, 3024), seed=61),
]
#: A save with next to no pixels: what the save path costs whatever the file (the manifest read, the
#: staging copy, the hand-off to the worker, two fsynced preview writes, the rename, the manifest write).
#: A save of any input pays at least its decode floor and this, so (floor + this) / floor is the lowest
#: ratio the path can reach on that input, however fast the rest of its render: the "reachable" detail.
PATH_ALONE = Input("64×48 JPEG: the save path alone", "jpeg", (64, 48), seed=71)
QUICK = [
    Input("quick JPEG", "jpeg", (480, 320), seed=11),
    Input("quick RGBA PNG", "png", (320, 320), alpha=True, seed=22),
    Input("quick 16-bit RGBA PNG", "png16", (300, 200), alpha=True, seed=25),
    Input("quick PSD", "psd", (320, 240), seed=31),
    Input("quick layered TIFF", "tiff", (360, 360), seed=41),
    Input("quick Krita .kra", "kra", (300, 300), seed=51),
    Input("quick HEIC", "heic", (320, 240), seed=61),
]


def heic_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------ the floor


def jpeg_floor_scale(size: tuple[int, int], edge: int) -> int:
    """The smallest DCT scale denominator (8, 4, 2, 1) whose decode keeps a long edge of at least ``edge``."""
    return next((s for s in (8, 4, 2) if max(size) / s >= edge), 1)


def decode_floor(spec: Input, path: Path, edge: int) -> None:
    """Only decode ``path``: what any preview of ``edge`` px must at least pay."""
    if spec.fmt in ("kra", "ora"):
        with zipfile.ZipFile(path) as zf:
            data = zf.read("mergedimage.png")
        with Image.open(io.BytesIO(data)) as im:
            im.load()
        return
    if spec.fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        if im.format == "JPEG":
            scale = jpeg_floor_scale(im.size, edge)
            im.draft("RGB", (im.width // scale, im.height // scale))
        im.load()


# --------------------------------------------------------------------------------------- the save path


def _order(rid: int) -> Order:
    return Order(receipt_id=rid, etsy_status="paid", buyer_name="Bench Buyer", ordered_at=datetime.now(UTC),
                 ship_by=None, jobs=[Job(job_id=str(rid * 10 + 1), listing_id=1, title="Portrait",
                                         workflow="default")])


class SavePath:
    """A real workspace, ``Ingestor`` and one-worker ``PreviewPool``: times what one artwork save costs."""

    def __init__(self, root: Path) -> None:
        base = load_settings(env={}, use_default_path=False)
        self.settings: Settings = replace(base, workspace=root / "ws")
        self.ws = Workspace(self.settings)
        self.ws.create()
        self.seen = SeenStore(self.ws.tool_dir / "watch.sqlite")
        self.pool = PreviewPool(workers=1)
        self.ingestor = Ingestor(self.ws, self.settings, self._render, self.seen)
        order = _order(1)
        self.spec: PreviewSpec = preview_spec(self.settings, order, order.jobs[0])[0]  # what a save renders
        # Receipt ids as Etsy's look (ten digits), all different, so every first save has new digits.
        self._ids = iter(np.random.default_rng(7).choice(np.arange(3_100_000_000, 3_199_999_999, 7919),
                                                         size=5000, replace=False).tolist())
        self.repeat_orders: dict[str, tuple[int, Path]] = {}
        self._marker = 0
        self._clock = time.time() - 30 * 86400  # the saves' mtimes (see ``save``), all in the past
        # Where a save's time goes, for the profile in each row's detail: the staging copy (with its hash
        # and fsync) and the render behind the hand-off are timed by wrapping them; the rest is the rest.
        self.parts: dict[str, float] = {}
        self._stage_copy = ingest_module.stage_copy
        ingest_module.stage_copy = self._timed_stage_copy

    def _timed_stage_copy(self, src: Path, folder: Path) -> Any:
        started = time.perf_counter()
        try:
            return self._stage_copy(src, folder)
        finally:
            self.parts["stage"] = time.perf_counter() - started

    def _render(self, src: Path, preview: Path, thumb: Path, spec: PreviewSpec, text: str) -> Any:
        started = time.perf_counter()
        try:
            return self.pool.submit(src, preview, thumb, spec, text).result()  # as WatchService._render does
        finally:
            self.parts["render"] = time.perf_counter() - started

    def new_order(self) -> tuple[int, Path]:
        rid = int(next(self._ids))
        return rid, self.ws.add_order(_order(rid), actor="bench")

    def save(self, spec: Input, source: Path, *, first: bool) -> float:
        """Save ``source`` as new bytes into a new order (``first``) or the input's repeat order; seconds."""
        if first or spec.label not in self.repeat_orders:
            rid, folder = self.new_order()
            if not first:
                self.repeat_orders[spec.label] = (rid, folder)
        else:
            rid, folder = self.repeat_orders[spec.label]
        self._marker += 1
        if spec.fmt == "heic":  # a phone photo is a buyer reference, never artwork: its path is the reference one
            (folder / REFERENCES).mkdir(exist_ok=True)
            target, wanted = folder / REFERENCES / f"photo-{self._marker}{spec.suffix}", "reference"
        else:
            target, wanted = folder / f"portrait{spec.suffix}", "version"
        save_variant(spec, source, target, self._marker)
        # The watcher makes a file a version only once it has been quiet for ``quiet_seconds``, so two
        # versions of one path are always saved at least that far apart. Called back to back, the repeat
        # saves would be milliseconds apart with the same size: what a renamed version looks like, which
        # is hashed before it is rendered (``ingest._likely_known``). Their mtimes are spaced as real saves.
        self._clock += self.settings.watcher.quiet_seconds + 1
        os.utime(target, (self._clock, self._clock))
        self.parts = {}
        started = time.perf_counter()
        outcome = self.ingestor.ingest(target)
        elapsed = time.perf_counter() - started
        if outcome.action != wanted:
            raise RuntimeError(f"{spec.label}: the save became {outcome.action!r}, not a {wanted}: {outcome.detail}")
        # Untimed: keep the disk from filling with copies of large files (nothing reads them here).
        shutil.rmtree(self.ws.versions_dir / str(rid), ignore_errors=True)
        if first:
            target.unlink()
        return elapsed

    def worker_pid(self) -> int:
        import psutil

        self.pool.warm()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kids = [p for p in psutil.Process().children() if "spawn_main" in " ".join(p.cmdline())]
            if kids:
                return kids[0].pid
            time.sleep(0.05)
        raise RuntimeError("the preview worker did not start")

    def close(self) -> None:
        ingest_module.stage_copy = self._stage_copy
        self.pool.shutdown()
        self.seen.close()
        self.ws.close()


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def render_peak(bench: SavePath, pid: int, spec: Input, path: Path, out: Path) -> dict[str, float]:
    """The worker's RSS before rendering ``path`` and its peak during the render, in MB."""
    before = _status_kb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS
    bench.pool.submit(path, out / "rss.jpg", out / "rss-t.jpg", bench.spec, f"PROOF {spec.label} rss").result()
    return {"before_mb": before / 1024, "peak_mb": _status_kb(pid, "VmHWM") / 1024}


def decoded_mb(spec: Input) -> float:
    w, h = spec.size
    return w * h * (4 if spec.alpha else 3) / 2**20


# -------------------------------------------------------------------------------------------- quality


def preview_quality(path: Path, out: Path, pspec: PreviewSpec) -> dict[str, Any]:
    """SSIM and PSNR of the preview's pixels (before the watermark and the JPEG encoding, which the
    pipeline's speed cannot change) and of the JPEG file written, both against ``quality.reference``."""
    pixels, _size, _low_res, _note = _prepare(path, pspec.long_edge, pspec.background, pspec.max_pixels,
                                              classify(path))
    ref = quality.reference(path, pixels.size, pspec.background)
    unmarked = replace(pspec, watermark=WatermarkSpec(enabled=False))
    render_previews(path, out / "q.jpg", out / "q-t.jpg", unmarked, "")
    with Image.open(out / "q.jpg") as im:
        written = np.asarray(im.convert("RGB"))
    Image.fromarray(ref).save(out / "ref.jpg", "JPEG", quality=pspec.jpeg_quality)
    with Image.open(out / "ref.jpg") as im:
        ref_encoded = np.asarray(im.convert("RGB"))
    arr = np.asarray(pixels.convert("RGB"))
    return {"ssim": quality.ssim(arr, ref), "psnr_db": round(quality.psnr(arr, ref), 2),
            "jpeg_ssim": round(quality.ssim(written, ref), 4), "jpeg_psnr_db": round(quality.psnr(written, ref), 2),
            # what the JPEG quality alone costs: the reference itself, encoded as the preview is
            "reference_as_jpeg_ssim": round(quality.ssim(ref_encoded, ref), 4), "preview_size": list(pixels.size)}


# ---------------------------------------------------------------------------------------------- run


def _time_input(bench: SavePath, spec: Input, path: Path, edge: int, runs: int) -> dict[str, list[float]]:
    """Floor, first save and repeat save, interleaved ``runs`` times after one untimed round; ms."""
    times: dict[str, list[float]] = {"floor": [], "first": [], "repeat": []}
    for round_ in range(runs + 1):
        t0 = time.perf_counter()
        decode_floor(spec, path, edge)
        floor = (time.perf_counter() - t0) * 1000
        first = bench.save(spec, path, first=True) * 1000
        first_parts = dict(bench.parts)
        repeat = bench.save(spec, path, first=False) * 1000
        if round_:  # the first round warms the page cache, the worker and the repeat order's layer
            times["floor"].append(floor)
            times["first"].append(first)
            times["repeat"].append(repeat)
            for which, parts in (("first", first_parts), ("repeat", bench.parts)):
                for part, seconds in parts.items():
                    times.setdefault(f"{which}_{part}", []).append(seconds * 1000)
    return times


def _parts(which: str, times: dict[str, list[float]]) -> dict[str, float]:
    """The profile: medians of the staging copy, of the hand-off + render in the worker, in ms (the rest --
    finding the order, the manifest write, the version's rename -- is the whole less the longer of the two).
    HEIC references render in-process and have neither."""
    return {f"{part}_ms": round(statistics.median(times[f"{which}_{part}"]), 1)
            for part in ("stage", "render") if f"{which}_{part}" in times}


def _alone_row(which: str, times: dict[str, list[float]]) -> dict[str, Any]:
    return row("preview", PATH_ALONE.label, f"{which} save", round(statistics.median(times[which]), 2), "ms",
               minimum=round(min(times[which]), 2), maximum=round(max(times[which]), 2),
               floor_ms=[round(v, 2) for v in sorted(times["floor"])],
               save_ms=[round(v, 2) for v in sorted(times[which])], **_parts(which, times))


def _ratio_row(label: str, which: str, times: dict[str, list[float]], goal: float | None,
               alone_ms: float | None, **detail: Any) -> dict[str, Any]:
    floor = statistics.median(times["floor"])
    value = statistics.median(times[which]) / floor
    ratios = [s / f for s, f in zip(times[which], times["floor"], strict=True)]
    if alone_ms is not None:
        detail["reachable"] = round((floor + alone_ms) / floor, 3)
    return row("preview", label, f"{which} save ÷ decode floor", round(value, 3), "×", target=goal,
               minimum=round(min(ratios), 3), maximum=round(max(ratios), 3),
               floor_ms=[round(v, 2) for v in sorted(times["floor"])],
               save_ms=[round(v, 2) for v in sorted(times[which])], **_parts(which, times), **detail)


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every input timed, then quality, then the long-lived worker's memory; rows for the harness."""
    inputs = [i for i in (QUICK if quick else FULL) if i.fmt != "heic" or heic_available()]
    runs = 1 if quick else RUNS

    def target(value: float) -> float | None:
        return None if quick else value  # quick numbers mean nothing: no targets on them

    directory = DATA / ("quick" if quick else "full")
    paths = {i.label: make(i, directory) for i in inputs}
    alone_path = make(PATH_ALONE, directory)
    rows: list[dict[str, Any]] = []
    firsts: list[float] = []
    repeats: list[float] = []
    with tempfile.TemporaryDirectory(prefix="kw-bench-preview-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        bench = SavePath(Path(tmp))
        try:
            pid = bench.worker_pid()
            tiny = out / "tiny.png"
            Image.new("RGB", (64, 48), (200, 120, 40)).save(tiny)
            bench.pool.submit(tiny, out / "t.jpg", out / "t-t.jpg", bench.spec, "PROOF").result()
            fresh_mb = _status_kb(pid, "VmRSS") / 1024  # started and imported, nothing large rendered yet
            pspec = bench.spec
            print(f"  preview: {PATH_ALONE.label}", file=sys.stderr, flush=True)
            alone = _time_input(bench, PATH_ALONE, alone_path, pspec.long_edge, runs)
            timed: dict[str, dict[str, list[float]]] = {}
            for spec in inputs:
                print(f"  preview: {spec.label}", file=sys.stderr, flush=True)
                timed[spec.label] = _time_input(bench, spec, paths[spec.label], pspec.long_edge, runs)
            # HEIC is a buyer reference, thumbnailed in the watcher's process: no worker ever decodes one.
            memory = {spec.label: render_peak(bench, pid, spec, paths[spec.label], out) for spec in inputs
                      if spec.fmt != "heic"}
            after_mb = _status_kb(pid, "VmRSS") / 1024
        finally:
            bench.close()
        rows += [_alone_row("first", alone), _alone_row("repeat", alone)]
        alone_ms = {which: statistics.median(alone[which]) for which in ("first", "repeat")}
        for spec in inputs:
            times, path = timed[spec.label], paths[spec.label]
            detail = {"file_mb": round(path.stat().st_size / 1e6, 2), "runs": runs}
            if spec.fmt == "jpeg":
                detail["floor_dct_scale"] = f"1/{jpeg_floor_scale(spec.size, pspec.long_edge)}"
            # A HEIC reference takes the reference path, not the artwork one the path alone measures.
            bound = {which: None if spec.fmt == "heic" else alone_ms[which] for which in alone_ms}
            first = _ratio_row(spec.label, "first", times, target(TARGET_EACH), bound["first"], **detail)
            repeat = _ratio_row(spec.label, "repeat", times, target(TARGET_EACH), bound["repeat"], **detail)
            firsts.append(first["value"])
            repeats.append(repeat["value"])
            q = preview_quality(path, out, pspec)
            rows += [first, repeat,
                     row("preview", spec.label, "preview SSIM vs linear-light Lanczos", round(q.pop("ssim"), 4), "",
                         target=target(SSIM_FLOOR), lower_is_better=False, **q)]
        for which, values in (("first", firsts), ("repeat", repeats)):
            geo = geometric_mean(values)
            rows.append(row("preview", "geometric mean", f"{which} save ÷ decode floor", round(geo, 3), "×",
                            target=target(TARGET_GEOMEAN), minimum=min(values), maximum=max(values),
                            inputs=len(values)))
        factors = {spec.label: (memory[spec.label]["peak_mb"] - memory[spec.label]["before_mb"]) / decoded_mb(spec)
                   for spec in inputs if spec.label in memory}
        worst = max(factors, key=lambda k: factors[k])
        rows.append(row("preview", f"worker peak RSS, worst: {worst}",
                        "(peak − RSS before) ÷ decoded image", round(factors[worst], 3), "×",
                        target=target(TARGET_RSS_FACTOR), minimum=round(min(factors.values()), 3),
                        maximum=round(factors[worst], 3),
                        per_input={k: round(v, 3) for k, v in factors.items()},
                        # the stricter view: the peak over the freshly started worker's RSS
                        per_input_over_fresh={spec.label: round((memory[spec.label]["peak_mb"] - fresh_mb)
                                                                / decoded_mb(spec), 3)
                                              for spec in inputs if spec.label in memory},
                        peak_mb={k: round(m["peak_mb"], 1) for k, m in memory.items()},
                        worker_fresh_mb=round(fresh_mb, 1), worker_after_all_mb=round(after_mb, 1)))
    return rows


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(json.dumps(result, ensure_ascii=False))
