"""``kaalwatch auth --no-browser``, ``auth status`` and ``sync`` through the real command line (subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from kaalwatch.sandbox import Sandbox
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kaalwatch", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60, check=False)


def test_paste_auth_status_and_sync_over_the_cli(sandbox: Sandbox, sb_settings: Settings, sb_ws: Workspace,
                                                  tmp_path: Path) -> None:
    env = {**os.environ, "KAALWATCH_WORKSPACE": str(sb_settings.workspace), "KAALWATCH_ETSY_BASE_URL": sandbox.url,
           "KAALWATCH_ETSY_KEYSTRING": sandbox.keystring, "KAALWATCH_ETSY_SHARED_SECRET": sandbox.shared_secret,
           "KAALWATCH_ETSY_REDIRECT_PORT": "3003", "KAALWATCH_CONFIG": str(tmp_path / "none.yaml")}
    (tmp_path / "none.yaml").write_text("{}\n")
    # Paste mode as a script would drive it: get the consent URL, "allow", paste where the browser went.
    proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "--debug", "auth", "--no-browser"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stdin is not None
    url = ""
    while not url:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        if "/oauth/connect?" in line:
            url = line.strip()
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    out, err = proc.communicate(location + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert "Connected to KaalStudioSandbox" in out

    status = run(["--debug", "auth", "status"], env)
    assert status.returncode == 0, status.stderr
    assert "KaalStudioSandbox" in status.stdout and "transactions_r" in status.stdout
    dry = run(["sync", "--dry-run"], env)
    assert dry.returncode == 0 and "would create order" in dry.stdout and "(dry run)" in dry.stdout
    assert list(sb_ws.orders_dir.iterdir()) == []
    real = run(["--debug", "sync"], env)
    assert real.returncode == 0, real.stderr
    lines = real.stdout.strip().splitlines()
    assert lines[-1].startswith("sync: ") and any(sb_ws.orders_dir.iterdir())
    assert lines[-2].startswith("downloads: ") and " 0 failed" in lines[-2]  # the queue drained after the pass

    tokens = (sb_ws.secrets_dir / "etsy_tokens.json").read_text()
    import json

    saved = json.loads(tokens)
    everything = out + err + status.stdout + status.stderr + dry.stdout + real.stdout + real.stderr
    for secret in (saved["access_token"], saved["refresh_token"], sandbox.shared_secret):
        assert secret not in everything

    sandbox.revoke_all_tokens()
    sandbox.expire_tokens()
    revoked = run(["sync"], env)
    assert revoked.returncode == 9 and "kaalwatch auth" in revoked.stderr
