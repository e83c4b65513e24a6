"""Service files: generated as pure text, checked by the platform's own parsers; Linux install in a temp XDG dir."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kaalwatch import service
from kaalwatch.service import ServiceSpec


@pytest.fixture
def spec(tmp_path: Path) -> ServiceSpec:
    ws = tmp_path / "Kaal Orders"  # a space, to prove quoting
    return service.default_spec(tmp_path / "conf dir" / "config.yaml", ws,
                                environ={"KAALWATCH_ETSY_KEYSTRING": "abc", "HOME": "/nope", "PATH": "/x"})


def test_spec_runs_this_interpreter_and_keeps_only_kaalwatch_secrets(spec: ServiceSpec, tmp_path: Path) -> None:
    assert spec.argv[:3] == (sys.executable, "-m", "kaalwatch")
    assert spec.argv[-1] == "run"
    assert spec.argv[spec.argv.index("--config") + 1] == str((tmp_path / "conf dir" / "config.yaml").resolve())
    assert dict(spec.environment) == {"KAALWATCH_ETSY_KEYSTRING": "abc"}


def test_systemd_unit_restarts_on_failure_and_quotes_paths(spec: ServiceSpec) -> None:
    unit = service.systemd_unit(spec)
    lines = unit.splitlines()
    assert "Restart=on-failure" in lines
    assert "WantedBy=default.target" in lines
    exec_line = next(line for line in lines if line.startswith("ExecStart="))
    assert f'"{spec.argv[4]}"' in exec_line  # the config path with a space is one quoted argument
    assert exec_line.endswith(" run")
    assert 'Environment="KAALWATCH_ETSY_KEYSTRING=abc"' in lines or "Environment=KAALWATCH_ETSY_KEYSTRING=abc" in lines


def test_systemd_unit_escapes_percent_and_dollar() -> None:
    spec = ServiceSpec(argv=("/usr/bin/python3", "-m", "kaalwatch", "--config", "/a/100%$HOME.yaml", "run"),
                       workspace=Path("/w"), log_dir=Path("/w/.kaalwatch/logs"))
    exec_line = next(x for x in service.systemd_unit(spec).splitlines() if x.startswith("ExecStart="))
    assert "/a/100%%$$HOME.yaml" in exec_line


def test_systemd_analyze_verify_accepts_the_unit(spec: ServiceSpec, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; CI installs it for this check")
    # verify needs the executable and working directory to exist
    spec.workspace.mkdir(parents=True)
    unit = tmp_path / "kaalwatch.service"
    unit.write_text(service.systemd_unit(spec), encoding="utf-8")
    runtime = tmp_path / "runtime"  # --user needs a runtime dir; CI containers have no login session
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run([analyze, "verify", "--user", str(unit)], capture_output=True, text=True, timeout=60,
                            env=env)
    # Unknown keys and bad values are warnings prefixed with the file's path, with exit code 0: fail on any.
    complaints = [line for line in (result.stderr + result.stdout).splitlines() if str(unit) in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_launchd_plist_parses_and_keeps_alive(spec: ServiceSpec) -> None:
    data = plistlib.loads(service.launchd_plist(spec))
    assert data["Label"] == service.LAUNCHD_LABEL
    assert data["ProgramArguments"] == list(spec.argv)
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardErrorPath"].startswith(str(spec.log_dir))
    assert data["WorkingDirectory"] == str(spec.workspace)


def test_windows_task_is_well_formed_xml_with_a_logon_trigger(spec: ServiceSpec) -> None:
    text = service.windows_task_xml(spec, "KAAL\\artist & co")
    root = ET.fromstring(text.split("?>", 1)[1])
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert root.find("t:Triggers/t:LogonTrigger/t:UserId", ns).text == "KAAL\\artist & co"
    assert root.find("t:Actions/t:Exec/t:Command", ns).text == sys.executable
    assert '"' in root.find("t:Actions/t:Exec/t:Arguments", ns).text  # the spaced config path stays one argument


@pytest.mark.parametrize(("rel", "expected"), [
    ("Documents/Kaal", "Documents"), ("Desktop", "Desktop"), ("Library/Mobile Documents/com~apple~CloudDocs/K",
                                                              "Library/Mobile Documents"),
    ("KaalOrders", None), ("DocumentsArchive/K", None),
])
def test_mac_protected_folders(tmp_path: Path, rel: str, expected: str | None) -> None:
    assert service.mac_protected_folder(tmp_path / rel, tmp_path) == expected


def test_linux_install_without_systemctl_writes_the_unit_and_says_so(spec: ServiceSpec, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    lines: list[str] = []
    calls: list[list[str]] = []
    path = service.install(spec, platform="linux", environ=env, out=lines.append,
                           runner=lambda cmd: calls.append(cmd))  # type: ignore[arg-type,func-returns-value]
    assert path == tmp_path / "xdg" / "systemd" / "user" / "kaalwatch.service"
    assert "Restart=on-failure" in path.read_text()
    assert calls == []
    assert any("systemctl not found" in line for line in lines)
    assert service.status(platform="linux", environ=env).startswith("installed at")
    service.uninstall(platform="linux", environ=env, out=lines.append)
    assert not path.exists()
    assert service.status(platform="linux", environ=env).startswith("not installed")


def test_linux_install_with_systemctl_enables_the_user_unit(spec: ServiceSpec, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in systemctl on PATH, recording its arguments: the real one would touch this machine's session.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "systemctl.calls"
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> '{record}'\necho active\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    lines: list[str] = []
    service.install(spec, platform="linux", environ=env, out=lines.append)
    assert record.read_text().splitlines() == ["--user daemon-reload", "--user enable --now kaalwatch.service"]
    assert any("loginctl enable-linger" in line for line in lines)
    assert service.status(platform="linux", environ=env).endswith("kaalwatch.service is active")


def test_failing_systemctl_is_one_clear_error(spec: ServiceSpec, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text("#!/bin/sh\necho 'Failed to connect to bus: No medium found' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(service.KaalwatchError, match="Failed to connect to bus"):
        service.install(spec, platform="linux", environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, out=print)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="installs a systemd user unit, which is Linux only")
def test_service_commands_through_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"workspace: {tmp_path / 'ws'}\n")
    env = {"PATH": str(tmp_path / "no-bin"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kaalwatch", "--config", str(config), "service", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    installed = cli("install")
    assert installed.returncode == 0, installed.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / "kaalwatch.service"
    assert f"--config {config}" in unit.read_text()
    assert "installed at" in cli("status").stdout
    assert cli("uninstall").returncode == 0 and not unit.exists()
    assert "not installed" in cli("status").stdout
