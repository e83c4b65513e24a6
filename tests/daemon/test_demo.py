"""`kaalwatch demo` as a newcomer runs it: no config, no terminal; orders, a save, a preview, within a minute."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml
from PIL import Image

from kaalwatch.demo import MARKER, prepare_workspace
from kaalwatch.errors import WorkspaceError
from tests.support.polling import wait_for


def test_demo_refuses_a_folder_that_is_not_a_demo_workspace(tmp_path: Path) -> None:
    real = tmp_path / "KaalOrders"
    (real / "orders").mkdir(parents=True)
    with pytest.raises(WorkspaceError, match="not a demo workspace"):
        prepare_workspace(real)
    assert not (real / MARKER).exists()
    again = prepare_workspace(tmp_path / "fresh")
    assert (again / MARKER).is_file()
    assert prepare_workspace(again) == again  # an earlier demo workspace may be reused


@pytest.mark.slow
def test_demo_from_nothing_to_a_preview_on_the_page_within_a_minute(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # A newcomer's machine: no config, no KAALWATCH_* variables, data dir under a fresh HOME, no TTY.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAALWATCH_", "XDG_"))}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "demo", "--orders-every", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        def printed(pattern: str) -> str | None:
            if proc.poll() is not None:
                pytest.fail(f"demo exited with {proc.returncode}:\n{''.join(lines)}")
            match = next((m for line in list(lines) if (m := re.search(pattern, line))), None)
            return match.group(1) if match else None

        url = wait_for(lambda: printed(r"Review page:\s+(http://127\.0\.0\.1:\d+/)"), 30, what="the page address")
        orders = Path(wait_for(lambda: printed(r"order folders in: (\S.*)$"), 5, what="the folder")).resolve()
        ready = time.monotonic() - started
        assert "kaalwatch-demo-" in str(orders) and str(orders).startswith(str(home))
        folder = wait_for(lambda: next((p for p in orders.iterdir() if (p / "order.yaml").is_file()), None), 30,
                          what="the first order folder")
        first_folder = time.monotonic() - started
        receipt_id = folder.name.split()[0]
        Image.new("RGB", (1000, 800), "darkorange").save(folder / "first try.png")

        def preview() -> bool:
            data = yaml.safe_load((folder / "order.yaml").read_text())
            return any(v.get("preview") for job in data["jobs"] for v in job.get("versions") or [])

        wait_for(preview, 30, what="version 1 and its preview")
        page = requests.get(f"{url}jobs", timeout=10)
        assert page.status_code == 200 and receipt_id in page.text  # no password on the loopback demo page
        assert "&lt;script&gt;" not in page.text and "etc/passwd" not in page.text  # a believable shop
        # The demo printed the line that points the command line at it; with it, `status` works meanwhile.
        config = printed(r"^\s+export KAALWATCH_CONFIG=(\S+)\s*$")
        assert config is not None, "".join(lines)
        status = subprocess.run([sys.executable, "-m", "kaalwatch", "status"], capture_output=True, text=True,
                                timeout=60, env={**env, "KAALWATCH_CONFIG": shlex.split(config)[0]})
        assert status.returncode == 0 and receipt_id in status.stdout and "daemon: pid" in status.stdout, status
        to_preview = time.monotonic() - started
        # New demo orders keep arriving.
        count = len(list(orders.iterdir()))
        wait_for(lambda: len(list(orders.iterdir())) > count, 30, what="a newly arrived demo order")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    assert code == 0, "".join(lines)
    assert to_preview < 60, f"ready {ready:.1f} s, first folder {first_folder:.1f} s, preview {to_preview:.1f} s"
    print(f"demo: ready {ready:.1f} s, first folder {first_folder:.1f} s, version+preview {to_preview:.1f} s")
