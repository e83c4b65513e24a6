"""Benchmark case "delivery": building every default deliverable of a 6000×6000 approved version.

The pet portrait workflow's three files (full PNG, 2048 px web JPEG, 8×10 in PDF at 300 DPI) are built by
``delivery.prepare`` end to end — decode, colour, frame, resample, encode within Etsy's 20 MB, thumbnails, atomic
writes, manifest — in a fresh process, against the bare decode of the same file in another fresh process: time
as a ratio to that decode (median of interleaved runs), and the build's peak RSS as a ratio to the decoded image
(w·h·3 bytes). Target for both: 3×. ``quick=True`` uses a tiny image and one run; its numbers mean nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench.case_preview import DATA  # noqa: E402
from bench.harness import row  # noqa: E402
from bench.inputs import Input, make  # noqa: E402

TARGET_TIME = 3.0
TARGET_RSS = 3.0
FULL, QUICK = (6000, 6000), (400, 400)

_CHILD = r"""
import json, sys, time, dataclasses
from pathlib import Path
sys.path.insert(0, sys.argv[1])
mode, source, root = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)

from PIL import Image
if mode == "decode":
    baseline = status("VmRSS")
    t0 = time.perf_counter()
    with Image.open(source) as im:
        im.load()
    seconds = time.perf_counter() - t0
else:
    import hashlib
    from kaalwatch import delivery, lifecycle
    from kaalwatch.model import Answer, Job, Order, Version, utcnow
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace
    settings = dataclasses.replace(load_settings(env={}, use_default_path=False), workspace=root)
    ws = Workspace(settings)
    ws.create()
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    job = Job(job_id="4000000001", listing_id=1, title="Custom Pet Portrait from Photo, Digital Dog Art",
              workflow="pet portrait", answers=[Answer(question="Pet name", answer="Biscuit")])
    order = Order(receipt_id=3000000001, etsy_status="paid", buyer_name="Ada Lovelace", ordered_at=utcnow(),
                  ship_by=None, jobs=[job])
    ws.add_order(order)
    copy = ws.version_copy_path(order.receipt_id, job.job_id, 1, digest, ".png")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(data)
    del data
    with Image.open(copy) as im:
        width, height = im.size
    with ws.edit(order.receipt_id) as current:
        lifecycle.add_version(current, job.job_id, Version(number=1, source_name="art.png", sha256=digest,
                              size=copy.stat().st_size, saved_at=utcnow(), copy=ws.relative_to_tool(copy),
                              width=width, height=height))
        lifecycle.approve(current, job.job_id, 1)
    baseline = status("VmRSS")
    t0 = time.perf_counter()
    report = delivery.prepare(ws, settings, order.receipt_id, anyway=True)
    seconds = time.perf_counter() - t0
    assert report.ok and len(report.files) == 3, report
    ws.close()
print(json.dumps({"seconds": seconds, "baseline_kb": baseline, "peak_kb": status("VmHWM"),
                  "files": [] if mode == "decode" else [[f.name, f.size, f.format] for f in report.files]}))
"""


def _child(mode: str, source: Path, root: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(ROOT), mode, str(source), str(root)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict[str, Any]]:
    size = QUICK if quick else FULL
    runs = 1 if quick else 7
    source = make(Input("6000² RGB PNG", "png", size, seed=2), DATA / ("quick" if quick else "full"))
    decodes, builds = [], []
    with tempfile.TemporaryDirectory(prefix="kw-bench-delivery-") as tmp:
        for number in range(runs):  # interleaved, so drift hits both alike
            decodes.append(_child("decode", source, Path(tmp) / f"d{number}"))
            builds.append(_child("build", source, Path(tmp) / f"b{number}"))
    decode_s = statistics.median(d["seconds"] for d in decodes)
    build_s = statistics.median(b["seconds"] for b in builds)
    ratios = [b["seconds"] / d["seconds"] for b, d in zip(builds, decodes, strict=True)]
    decoded_mb = size[0] * size[1] * 3 / 2**20
    peak_mb = max(b["peak_kb"] for b in builds) / 1024
    label = f"{size[0]}² PNG → PNG + web JPEG + 8×10 PDF"
    files = {name: f"{fmt} {bytes_ / 1e6:.1f} MB" for name, bytes_, fmt in builds[-1]["files"]}
    return [
        row("delivery", label, "build time / decode time", round(build_s / decode_s, 3), "×", target=TARGET_TIME,
            minimum=round(min(ratios), 3), maximum=round(max(ratios), 3), build_s=round(build_s, 2),
            decode_s=round(decode_s, 2), runs=runs, source_mb=round(source.stat().st_size / 1e6, 1), files=files),
        row("delivery", f"peak RSS, {label}", "peak RSS / decoded image (w·h·3 bytes)",
            round(peak_mb / decoded_mb, 3), "×", target=TARGET_RSS, peak_rss_mb=round(peak_mb, 1),
            baseline_rss_mb=round(max(b["baseline_kb"] for b in builds) / 1024, 1),
            decode_peak_rss_mb=round(max(d["peak_kb"] for d in decodes) / 1024, 1), decoded_mb=round(decoded_mb, 1)),
    ]
