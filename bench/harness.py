"""Shared measuring tools for the benchmark cases: repeated timing, statistics, machine facts, the table."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

ROW_KEYS = ("case", "name", "metric", "value", "unit", "target", "ok", "min", "max", "detail")


def timed(fn: Callable[[], Any], *, runs: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``runs`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def stats(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "p95": p95, "p99": p99}


def row(case: str, name: str, metric: str, value: float, unit: str, *, target: float | None = None,
        lower_is_better: bool = True, minimum: float | None = None, maximum: float | None = None,
        **detail: Any) -> dict[str, Any]:
    """One line of the table; ``ok`` compares ``value`` with ``target`` (None when there is no target)."""
    ok = None if target is None else (value <= target if lower_is_better else value >= target)
    return {"case": case, "name": name, "metric": metric, "value": value, "unit": unit, "target": target, "ok": ok,
            "min": value if minimum is None else minimum, "max": value if maximum is None else maximum,
            "detail": detail}


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import PIL

    info: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "pillow": PIL.__version__,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None)
        info["cpu"] = model
    except OSError:
        info["cpu"] = platform.processor() or None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
        info["memory_gb"] = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the rows (also readable in a terminal)."""
    header = "| case | input | metric | median | min | max | unit | target | met |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        met = "—" if r.get("ok") is None else ("✔" if r["ok"] else "✘ MISSED")
        lines.append(
            f"| {r['case']} | {r['name']} | {r['metric']} | {_fmt(r['value'])} | {_fmt(r.get('min'))} | "
            f"{_fmt(r.get('max'))} | {r['unit']} | {_fmt(r.get('target'))} | {met} |"
        )
    return "\n".join(lines)


def profile_table(rows: Sequence[dict[str, Any]]) -> str:
    """Where each preview save's time went (medians in ms, from the rows' detail): the decode floor, the
    whole save, and its parts -- the staging copy and the hand-off plus the render in the worker, which run
    side by side (``Ingestor.stage_and_render``), and the rest: the whole less the longer of the two. The
    last column is the lowest ratio the path can reach on the input (``case_preview.PATH_ALONE``)."""
    lines = ["| input | save | decode floor | whole save | staging copy ‖ | hand-off + render ‖ | rest "
             "| reachable ÷ floor |",
             "|" + "---|" * 8]
    for r in rows:
        detail = r.get("detail") or {}
        if r.get("case") != "preview" or "save_ms" not in detail:
            continue
        floor, save = statistics.median(detail["floor_ms"]), statistics.median(detail["save_ms"])
        stage, render = detail.get("stage_ms"), detail.get("render_ms")
        rest = None if stage is None or render is None else save - max(stage, render)
        which = r["metric"].split()[0]
        lines.append(f"| {r['name']} | {which} | {_fmt(floor)} | {_fmt(save)} | {_fmt(stage)} | {_fmt(render)} | "
                     f"{_fmt(rest)} | {_fmt(detail.get('reachable'))} |")
    return "\n".join(lines)
