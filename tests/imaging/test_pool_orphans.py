"""Preview workers do not outlive a SIGKILLed owner (an OOM kill or kill -9 of the daemon runs no clean-up)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from tests.support.polling import wait_for

OWNER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from PIL import Image
    from kaalwatch.imaging import PreviewPool, PreviewSpec
    if __name__ == "__main__":
        tmp = Path(sys.argv[1])
        Image.new("RGB", (64, 48), (10, 120, 200)).save(tmp / "a.png")
        pool = PreviewPool(2)
        pool.submit(tmp / "a.png", tmp / "p.jpg", tmp / "t.jpg", PreviewSpec(), "PROOF").result(60)
        print("ready", flush=True)
        sys.stdin.read()  # stay alive until killed
""")


def test_workers_exit_when_their_owner_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(OWNER, encoding="utf-8")
    repo = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=repo)
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        workers = [p for p in psutil.Process(owner.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline())]
        assert workers, "the pool started no worker process"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        wait_for(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 15,
                 what="the orphaned preview workers to exit")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        for child in psutil.Process().children(recursive=True):
            if "spawn_main" in " ".join(child.cmdline()) and child.ppid() == 1:
                child.kill()
