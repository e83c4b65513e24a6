"""The viewer benchmark's harness runs (tiny) in a real Chromium; the numbers are for ``python3 tasks.py bench``.

It runs in its own process, as ``tests/bench/test_harness.py`` does: the case starts a process pool, and on
Python 3.11 a pool's shutdown can close a descriptor number another test's server has reused since.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import case_viewer
from tests.support.browser import CHROMIUM

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium")]


def test_quick_viewer_bench_rows(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "viewer", "--quick", "--output", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert [(r["name"], r["metric"]) for r in rows] == [
        ("save → visible on an open page", "median latency"), ("save → visible on an open page", "p95 latency"),
        ("first paint, 2000² PNG (overview built by the daemon)", "page open → drawn"),
        ("first paint, 2000² PNG (cold tile cache)", "page open → drawn")]
    latency = rows[0]
    assert latency["target"] == pytest.approx(case_viewer.QUIET + latency["detail"]["preview_s"] + 0.5, abs=1e-3)
    for r in rows:
        assert r["case"] == "viewer" and r["unit"] == "s" and 0 < r["min"] <= r["value"] <= r["max"]
        assert r["ok"] is None or r["ok"] == (r["value"] <= r["target"])
    assert rows[2]["target"] == 1.0 and rows[3]["target"] is None
