"""Benchmark case "sync": a first import of N receipts from the sandbox, then an idle incremental sync.

Measured (``run(quick)`` returns one dict per metric for the harness):

* **API calls** of the first import, counted in the sandbox's request log, against the budget
  ``⌈N/100⌉`` receipt pages + ``⌈L/100⌉`` listing batches + one personalization call per distinct listing
  (L = listings of the imported orders) — nothing per receipt;
* **API calls** of the following idle sync (target: exactly 1);
* **wall time** of the first import (target < 60 s for 5,000 receipts on 2 cores) and the sync process's
  **peak RSS** (target < 200 MB). Image downloads are not part of a sync pass (the download queue fetches
  them), as the issue asks.

The sandbox runs in this process with Etsy's default limits (10/s), the sync in a child process, so the
RSS is the sync's own. ``quick=True`` imports 150 receipts: seconds, and its timing means little.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent("""
    import dataclasses, json, resource, sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace
    from kaalwatch.etsy.client import EtsyClient
    from kaalwatch.sync import sync_once
    args = json.loads(sys.argv[1])
    s = load_settings(env={}, use_default_path=False)
    s = dataclasses.replace(s, workspace=Path(args["workspace"]), etsy=dataclasses.replace(s.etsy, **args["etsy"]))
    ws = Workspace(s)
    out = {}
    with EtsyClient.from_settings(s, ws) as client:
        t = time.perf_counter()
        first = sync_once(ws, s, client, since=datetime.now(UTC) - timedelta(days=3650))
        out["first_seconds"] = time.perf_counter() - t
        out["first_calls"] = first.api_calls
        out["new"] = first.new
        out["fatal"] = first.fatal
        second = sync_once(ws, s, client)
        out["second_calls"] = second.api_calls
    # VmHWM is this process's own peak. ru_maxrss is not: Linux carries the parent's peak across
    # fork+exec, so a child of a large benchmark process would report the parent's memory.
    try:
        status = Path("/proc/self/status").read_text()
        out["rss_mb"] = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]) / 1024
    except (OSError, StopIteration):
        out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
""")


def _result(name: str, metric: str, value: float, unit: str, target: float | None, ok: bool | None,
            detail: dict[str, Any]) -> dict[str, Any]:
    return {"case": "sync", "name": name, "metric": metric, "value": float(value), "unit": unit, "target": target,
            "ok": ok, "min": float(value), "max": float(value), "detail": detail}


def run(quick: bool = False) -> list[dict[str, Any]]:
    from kaalwatch.etsy.oauth import connect
    from kaalwatch.sandbox import Sandbox
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace

    extra = 150 if quick else 5000
    with tempfile.TemporaryDirectory(prefix="kw-bench-sync-") as tmp, Sandbox(seed=1, auto_approve=True,
                                                                                receipts=extra) as sb:
        import dataclasses

        import requests

        etsy = {"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret, "redirect_port": 0}
        base = load_settings(env={}, use_default_path=False)
        settings = dataclasses.replace(base, workspace=Path(tmp) / "ws", etsy=dataclasses.replace(base.etsy, **etsy))
        ws = Workspace(settings)
        ws.create()
        connect(settings, ws, lambda url: requests.get(url, timeout=10), output=lambda line: None)
        ws.close()
        sb.clear_requests()
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"workspace": str(settings.workspace),
                                                                         "etsy": etsy})],
                              capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"sync child failed: {proc.stderr.strip()[-500:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        requests_log = sb.requests
        receipts = len(sb.receipt_ids)
        first_ops = [r.operation for r in requests_log]
        # The idle sync's single call is the last one; everything before it belongs to the first import.
        first_ops = first_ops[: len(first_ops) - out["second_calls"]]
        pages = first_ops.count("getShopReceipts")
        batches = first_ops.count("getListingsByListingIds")
        personal = first_ops.count("getListingPersonalization")
        budget = math.ceil(receipts / 100) + max(1, math.ceil(personal / 100)) + personal
        detail = {"receipts": receipts, "new_orders": out["new"], "pages": pages, "listing_batches": batches,
                  "personalization_calls": personal, "other_ops": sorted(set(first_ops) - {
                      "getShopReceipts", "getListingsByListingIds", "getListingPersonalization"}),
                  "fatal": out["fatal"], "process_wall_s": round(wall, 2), "client_rate_per_second":
                  settings.etsy.rate_per_second}
        fast_enough = out["first_seconds"] < 60 if not quick else None
        return [
            _result("first import API calls", "calls", out["first_calls"], "calls", float(budget),
                    out["first_calls"] <= budget and out["fatal"] is None, detail),
            _result("idle incremental sync API calls", "calls", out["second_calls"], "calls", 1.0,
                    out["second_calls"] == 1, {}),
            _result(f"first import of {receipts} receipts", "wall time", out["first_seconds"], "s",
                    60.0 if not quick else None, fast_enough, detail),
            _result("sync process peak RSS", "peak RSS", out["rss_mb"], "MB", 200.0 if not quick else None,
                    out["rss_mb"] < 200 if not quick else None, {}),
        ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
