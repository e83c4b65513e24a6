"""The benchmark harness cannot rot: every case runs in its tiny form and yields well-formed rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import CASES, update_readme
from bench.harness import ROW_KEYS, geometric_mean, row, stats, table

REPO = Path(__file__).resolve().parents[2]


def test_stats_and_rows() -> None:
    summary = stats([3.0, 1.0, 2.0, 10.0])
    assert (summary["median"], summary["min"], summary["max"], summary["p99"]) == (2.5, 1.0, 10.0, 10.0)
    assert geometric_mean([1.0, 4.0]) == pytest.approx(2.0)
    assert row("c", "n", "m", 2.0, "s", target=1.5)["ok"] is False
    assert row("c", "n", "m", 2.0, "calls", target=1.0, lower_is_better=False)["ok"] is True
    assert row("c", "n", "m", 2.0, "s")["ok"] is None


def test_table_marks_missed_targets() -> None:
    text = table([row("c", "a", "m", 2.0, "×", target=1.5), row("c", "b", "m", 1.0, "×", target=1.5)])
    assert "✘ MISSED" in text.splitlines()[2] and "✔" in text.splitlines()[3]


def test_readme_block_is_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\nouttro\n")
    update_readme(readme, "NEW TABLE")
    assert readme.read_text() == "intro\n<!-- bench:start -->\nNEW TABLE\n<!-- bench:end -->\nouttro\n"


def test_profile_table_splits_each_save_into_its_parts() -> None:
    from bench.harness import profile_table

    save = row("preview", "phone JPEG", "first save ÷ decode floor", 2.0, "×", target=1.5,
               floor_ms=[30.0, 31.0, 29.0], save_ms=[60.0, 62.0, 61.0], stage_ms=4.0, render_ms=50.0,
               reachable=1.27)
    reference = row("preview", "HEIC", "repeat save ÷ decode floor", 1.0, "×", floor_ms=[9.0], save_ms=[9.0])
    lines = profile_table([save, reference, row("watch", "x", "latency", 1.0, "s")]).splitlines()
    # The copy and the render run side by side: the rest is the whole less the longer of them.
    assert lines[2] == "| phone JPEG | first | 30.0 | 61.0 | 4.00 | 50.0 | 11.0 | 1.27 |"
    assert lines[3] == "| HEIC | repeat | 9.00 | 9.00 | — | — | — | — |" and len(lines) == 4


@pytest.mark.parametrize(("value", "quick", "status"), [(2.0, False, 2), (1.0, False, 0), (2.0, True, 0)])
def test_a_missed_target_makes_the_run_exit_non_zero(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str], value: float,
                                                      quick: bool, status: int) -> None:
    import bench.__main__ as entry

    rows = [row("preview", "phone JPEG", "first save ÷ decode floor", value, "×", target=1.5)]
    monkeypatch.setattr(entry, "run_cases", lambda names, quick: (rows, []))
    argv = ["preview", "--output", str(tmp_path / "r.json")] + (["--quick"] if quick else [])
    assert entry.main(argv) == status
    assert ("TARGET MISSED: preview | phone JPEG | first save ÷ decode floor" in capsys.readouterr().err) == (
        value > 1.5)


@pytest.mark.slow
def test_every_case_runs_quickly_and_yields_rows(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    data = json.loads(out.read_text())
    assert data["failures"] == [], data["failures"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["case"] for r in data["results"]} >= {"preview", "watch", "watchwork", "sync", "review", "startup",
                                                    "delivery", "viewer"}
    for r in data["results"]:
        assert set(ROW_KEYS) <= set(r), r
        assert isinstance(r["value"], int | float)
    assert data["machine"]["cpu_count"] >= 1
    assert len(CASES) == 8
