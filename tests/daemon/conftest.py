"""Fixtures for the daemon tests: a config file for a temporary workspace, and `kaalwatch run` as a real process."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import wait_for


def write_config(path: Path, workspace: Path, **sections: dict[str, Any]) -> Path:
    """A config file (JSON is YAML) for ``workspace`` with fast timings, merged with ``sections``."""
    data: dict[str, Any] = {
        "workspace": str(workspace),
        "sync": {"interval_minutes": 0.05},
        "watcher": {"quiet_seconds": 0.5, "poll_interval_seconds": 0.5, "rescan_minutes": 0.1, "workers": 1},
        "review": {"host": "127.0.0.1", "port": 0, "require_password": False},
        "etsy": {"base_url": "http://127.0.0.1:9", "keystring": "k", "shared_secret": "s", "max_retries": 0,
                 "timeout_seconds": 2.0},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


class DaemonProcess:
    """``python -m kaalwatch --config FILE run`` as a child process, with its output kept in a file."""

    def __init__(self, config: Path, workspace: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.workspace = workspace
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAALWATCH_")}
        env.update(self.env or {})
        env["PYTHONUNBUFFERED"] = "1"
        self._out = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "kaalwatch", "--config", str(self.config), "run"],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=env)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def health(self) -> dict[str, Any]:
        path = self.workspace / ".kaalwatch" / "state" / "health.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited with {self.proc.returncode}:\n{self.output()}")
            h = self.health()
            return h if h.get("pid") == self.pid and h.get("running") else None

        return wait_for(ready, timeout, what="the daemon's first health.json")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "_out", None):
            self._out.close()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Build ``DaemonProcess`` objects; any left running at the end of the test are killed."""
    made: list[DaemonProcess] = []

    def factory(config: Path, workspace: Path, name: str = "daemon",
                env: dict[str, str] | None = None) -> DaemonProcess:
        proc = DaemonProcess(config, workspace, tmp_path / f"{name}-{len(made)}.log", env)
        made.append(proc)
        return proc

    yield factory
    for proc in made:
        proc.stop()


@dataclasses.dataclass
class Connected:
    """A sandbox shop, a workspace connected to it through the real OAuth flow, and its config file."""

    sandbox: Any
    ws: Any
    config: Path


@pytest.fixture
def connected(tmp_path: Path, settings: Any) -> Iterator[Connected]:
    import requests

    from kaalwatch.etsy import oauth
    from kaalwatch.sandbox import Sandbox
    from kaalwatch.settings import load_settings
    from kaalwatch.store import Workspace

    sb = Sandbox(auto_approve=True).start()
    try:
        root = tmp_path / "ws"
        config = write_config(tmp_path / "config.yaml", root,
                              etsy={"base_url": sb.url, "keystring": sb.keystring, "shared_secret": sb.shared_secret})
        loaded = load_settings(config, env={}, use_default_path=False)
        ws = Workspace(loaded)
        ws.create()
        oauth.connect(loaded, ws, open_url=lambda url: requests.get(url, timeout=10), output=lambda _line: None,
                      port=0)
        yield Connected(sb, ws, config)
        ws.close()
    finally:
        sb.stop()
