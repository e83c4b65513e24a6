"""Benchmark case "daemon": resident memory of an idle ``kaalwatch run`` connected to a sandbox shop.

The daemon runs as a real process (``python -m kaalwatch run``) on a temporary workspace whose config
points at an in-process :class:`~kaalwatch.sandbox.Sandbox`, connected through the real OAuth flow. Once it
has written its first health file and finished the first sync (the seeded orders become folders), its RSS
is sampled for a few seconds; the median is the value, compared with the 120 MB target. Preview workers
start when the first artwork save settles, so a daemon that has seen none has none; their memory (if
any) is reported in ``detail``. The start-up time is the median (min, max) of ``STARTS`` starts: the first
on the fresh workspace, the others restarting on the workspace it filled, as a service restart does.
``quick=True`` samples for one second; the number is still meaningful, only noisier.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from bench.harness import row  # noqa: E402

TARGET_MB = 120.0
#: Daemon starts timed (the first on a fresh workspace, the rest on the one it filled).
STARTS = 7


def _health(ws: Path) -> dict[str, Any]:
    try:
        return json.loads((ws / ".kaalwatch" / "state" / "health.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"daemon benchmark: timed out waiting for {what}")


def run(quick: bool) -> list[dict[str, Any]]:
    import psutil
    import requests

    from kaalwatch.demo import demo_config, write_config
    from kaalwatch.etsy import oauth
    from kaalwatch.sandbox import Sandbox
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace

    with tempfile.TemporaryDirectory(prefix="kaalwatch-bench-daemon-") as tmp, Sandbox(auto_approve=True) as sb:
        root = Path(tmp) / "ws"
        root.mkdir()
        config = write_config(root, demo_config(root, sb.url, sb.keystring, sb.shared_secret, page_port=0))
        settings = load_settings(config, env={}, use_default_path=False)
        ws = Workspace(settings)
        ws.create()
        oauth.connect(settings, ws, open_url=lambda url: requests.get(url, timeout=10), output=lambda _l: None,
                      port=0)
        ws.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAALWATCH_")}
        samples, child_mb, folders, ready = [], 0.0, 0, []
        for start in range(1 if quick else STARTS):
            began = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "--config", str(config), "run"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            try:
                _wait(lambda pid=proc.pid: _health(root).get("pid") == pid, 60, "the first health file")
                ready.append(time.monotonic() - began)
                if start:
                    continue  # later starts: only the start-up time, on the workspace the first one filled
                _wait(lambda: (_health(root).get("last_sync_result") or "").startswith("sync:"), 60,
                      "the first sync")
                folders = sum(1 for p in (root / "orders").iterdir() if p.is_dir())
                process = psutil.Process(proc.pid)
                deadline = time.monotonic() + (1.0 if quick else 10.0)
                while time.monotonic() < deadline:
                    samples.append(process.memory_info().rss / 1024**2)
                    child_mb = max(child_mb, sum(c.memory_info().rss
                                                 for c in process.children(recursive=True)) / 1024**2)
                    time.sleep(0.2)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    median = statistics.median(samples)
    return [
        row("startup", "kaalwatch run, idle after first sync", "RSS", round(median, 1), "MB", target=TARGET_MB,
            minimum=round(min(samples), 1), maximum=round(max(samples), 1), samples=len(samples),
            children_mb=round(child_mb, 1), order_folders=folders),
        row("startup", "kaalwatch run, start to first health file", "time", round(statistics.median(ready), 2), "s",
            minimum=round(min(ready), 2), maximum=round(max(ready), 2), starts=len(ready),
            first_start_s=round(ready[0], 2)),
    ]


if __name__ == "__main__":
    for line in run(quick="--quick" in sys.argv):
        print(line)
