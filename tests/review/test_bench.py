"""The review benchmark's harness runs (tiny) and its page requests succeed; the numbers are for ``make bench``."""

from __future__ import annotations

from bench import case_review


def test_quick_bench_rows() -> None:
    rows = case_review.run(quick=True)
    assert [r["name"] for r in rows] == ["today view (every active job by next step)",
                                         "jobs list (active, first page)", "jobs list (search 'hopper')",
                                         "search 'zoe' (all states, accents, answers)",
                                         "job page (50 versions)", "job page (50 versions, manifest parsed)"]
    for r in rows:
        assert r["case"] == "review" and r["unit"] == "ms" and r["target"] in (150.0, 100.0)
        assert 0 < r["min"] <= r["value"] <= r["max"]
        assert r["ok"] == (r["value"] <= r["target"])
        assert r["detail"]["html_bytes"] > 3_000 and r["detail"]["p95_ms"] >= r["value"]
