"""``python -m bench``: run every benchmark case, print one table, write bench/results.json.

Cases live in ``bench/case_<name>.py`` and expose ``run(quick: bool) -> list[dict]`` (rows made with
``bench.harness.row``). ``--quick`` runs tiny versions in seconds (the test suite does, so the harness
cannot rot); ``--update-readme`` puts the table into README.md between its benchmark markers.

Exit status: 0 when every case ran and every target was met, 1 when a case failed, 2 when a target was
missed (named on stderr), so the benchmark can gate a release. A quick run's numbers mean little and
never gate.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.harness import machine, profile_table, table

CASES = ("preview", "watch", "watchwork", "sync", "review", "daemon", "delivery", "viewer")
HERE = Path(__file__).resolve().parent
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
PROFILE_START = "<!-- bench-profile:start -->"
PROFILE_END = "<!-- bench-profile:end -->"


def run_cases(names: list[str], *, quick: bool) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        started = time.perf_counter()
        print(f"· {name} …", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench.case_{name}")
            case_rows = module.run(quick)
        except Exception:  # one broken case must not hide the others' numbers
            failures.append(f"{name}: {traceback.format_exc(limit=3)}")
            continue
        rows.extend(case_rows)
        print(f"  {name}: {len(case_rows)} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return rows, failures


def update_readme(readme: Path, text: str, start: str = README_START, end: str = README_END) -> None:
    content = readme.read_text(encoding="utf-8")
    if start not in content or end not in content:
        raise SystemExit(f"{readme} has no {start} … {end} block")
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", choices=[*CASES, []], help="cases to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one run: checks the harness in seconds")
    parser.add_argument("--output", type=Path, default=HERE / "results.json", help="where to write the JSON")
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    names = list(args.cases) or list(CASES)
    info = machine()
    started = time.perf_counter()
    rows, failures = run_cases(names, quick=args.quick)
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["quick"] = args.quick
    args.output.write_text(json.dumps({"machine": info, "results": rows, "failures": failures}, indent=2,
                                      default=str), encoding="utf-8")
    text = table(rows)
    cpu = info.get("cpu") or "unknown CPU"
    caption = (f"Measured {info['date'][:10]} on {info['cpu_count']} cores ({cpu}), {info.get('memory_gb', '?')} GB, "
               f"Python {info['python']}, Pillow {info['pillow']}; whole run {info['seconds']} s.")
    print(text)
    print(caption)
    for failure in failures:
        print(f"CASE FAILED: {failure}", file=sys.stderr)
    if args.update_readme and not args.quick:
        if failures:  # a table missing a case would read as if that case had no targets
            print("README.md not updated: a case failed", file=sys.stderr)
        else:
            update_readme(HERE.parent / "README.md", f"{text}\n\n{caption}")
            if any(r.get("case") == "preview" for r in rows):
                update_readme(HERE.parent / "README.md", profile_table(rows), PROFILE_START, PROFILE_END)
    missed = [f"{r['case']} | {r['name']} | {r['metric']}" for r in rows if r.get("ok") is False]
    for line in missed:
        print(f"TARGET MISSED: {line}", file=sys.stderr)
    return 1 if failures else 2 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
