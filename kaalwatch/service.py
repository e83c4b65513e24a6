"""Run ``kaalwatch run`` as a per-user background service: systemd user unit, LaunchAgent, or logon task.

The file contents are pure functions of a :class:`ServiceSpec` (tested without touching the system);
``install``/``uninstall``/``status`` write them where the platform looks and call ``systemctl --user``,
``launchctl`` or ``schtasks`` when those exist — otherwise they say what to run by hand. The daemon never
forks: the supervisor keeps it running and restarts it after a crash.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from kaalwatch.errors import KaalwatchError

UNIT_NAME = "kaalwatch.service"
LAUNCHD_LABEL = "com.kaaldigital.kaalwatch"
TASK_NAME = "kaalwatch"

# Folders macOS's privacy protection (TCC) hides from background processes unless the user grants access.
_MAC_PROTECTED = ("Desktop", "Documents", "Downloads", "Library/Mobile Documents", "Library/CloudStorage")


@dataclass(frozen=True)
class ServiceSpec:
    """What every supervisor needs: the command, the workspace (working directory) and the log folder."""

    argv: tuple[str, ...]
    workspace: Path
    log_dir: Path
    environment: tuple[tuple[str, str], ...] = ()


def default_spec(config_path: Path | None, workspace: Path, environ: Mapping[str, str] | None = None) -> ServiceSpec:
    """``python -m kaalwatch [--config FILE] run`` with this interpreter, so the venv is the one used."""
    argv: list[str] = [sys.executable, "-m", "kaalwatch"]
    if config_path is not None:
        argv += ["--config", str(config_path.expanduser().resolve())]
    argv.append("run")
    env = environ if environ is not None else os.environ
    # Secrets passed by environment must reach the service too; the rest of the environment must not.
    keep = tuple(sorted((k, v) for k, v in env.items()
                        if k in ("KAALWATCH_ETSY_KEYSTRING", "KAALWATCH_ETSY_SHARED_SECRET", "KAALWATCH_WORKSPACE")))
    ws = workspace.expanduser().resolve()
    return ServiceSpec(argv=tuple(argv), workspace=ws, log_dir=ws / ".kaalwatch" / "logs", environment=keep)


# --------------------------------------------------------------------------------------------------
# Generated files (pure)


def _systemd_quote(arg: str) -> str:
    # systemd splits ExecStart like a shell but expands % specifiers and $ variables: escape both.
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and all(c.isalnum() or c in "/._-+=:@," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(spec: ServiceSpec) -> str:
    """A systemd *user* unit: restarted on failure, stopped with SIGTERM (the daemon exits 0 within seconds)."""
    lines = [
        "[Unit]",
        "Description=kaalwatch: Etsy orders, artwork versions and the review page",
        "Documentation=https://github.com/kaal-digital/kaalwatch",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(a) for a in spec.argv),
        # WorkingDirectory takes the rest of the line as the path (spaces included; quotes are an error).
        "WorkingDirectory=" + str(spec.workspace).replace("%", "%%"),
    ]
    lines += [f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in spec.environment]
    lines += [
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=10",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def launchd_plist(spec: ServiceSpec) -> bytes:
    """A LaunchAgent: started at login, kept alive, stdout/stderr to the workspace's log folder."""
    data = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(spec.argv),
        "WorkingDirectory": str(spec.workspace),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash, not after a clean stop
        "ProcessType": "Background",
        "StandardOutPath": str(spec.log_dir / "launchd.out.log"),
        "StandardErrorPath": str(spec.log_dir / "launchd.err.log"),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1", **dict(spec.environment)},
    }
    return plistlib.dumps(data, fmt=plistlib.FMT_XML)


def windows_task_xml(spec: ServiceSpec, user: str) -> str:
    """A Task Scheduler task for one user: starts at their logon, restarted on failure, no time limit."""
    command = spec.argv[0]
    arguments = subprocess.list2cmdline(list(spec.argv[1:]))
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>kaalwatch: Etsy orders, artwork versions and the review page</Description>
  </RegistrationInfo>
  <Triggers><LogonTrigger><Enabled>true</Enabled><UserId>{escape(user)}</UserId></LogonTrigger></Triggers>
  <Principals><Principal id="Author"><UserId>{escape(user)}</UserId><LogonType>InteractiveToken</LogonType>
    <RunLevel>LeastPrivilege</RunLevel></Principal></Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure><Interval>PT1M</Interval><Count>999</Count></RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author"><Exec><Command>{escape(command)}</Command><Arguments>{escape(arguments)}</Arguments>
    <WorkingDirectory>{escape(str(spec.workspace))}</WorkingDirectory></Exec></Actions>
</Task>
"""


def mac_protected_folder(workspace: Path, home: Path) -> str | None:
    """The protected folder (Documents, Desktop, iCloud Drive…) the workspace is under, if any."""
    ws = workspace.expanduser().resolve()
    for name in _MAC_PROTECTED:
        folder = (home / name).resolve()
        if ws == folder or folder in ws.parents:
            return name
    return None


# --------------------------------------------------------------------------------------------------
# Installing


Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _platform() -> str:
    return {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)


def systemd_unit_path(environ: Mapping[str, str] | None = None) -> Path:
    env = environ if environ is not None else os.environ
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "systemd" / "user" / UNIT_NAME


def launchd_plist_path(home: Path | None = None) -> Path:
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip().splitlines()
        raise KaalwatchError(f"{what} failed: {detail[0] if detail else f'exit {result.returncode}'}",
                             hint="see the message above; the service file was written")


def install(spec: ServiceSpec, *, platform: str | None = None, runner: Runner = _run,
            environ: Mapping[str, str] | None = None, out: Callable[[str], None] = print) -> Path:
    """Write the service file for this platform and activate it when the platform's tool is present."""
    platform = platform or _platform()
    if platform == "linux":
        path = systemd_unit_path(environ)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(systemd_unit(spec), encoding="utf-8")
        out(f"wrote {path}")
        if shutil.which("systemctl") is None:
            out("systemctl not found: start it with your init system, or run `kaalwatch run` yourself")
            return path
        _checked(runner(["systemctl", "--user", "daemon-reload"]), "systemctl --user daemon-reload")
        _checked(runner(["systemctl", "--user", "enable", "--now", UNIT_NAME]), "systemctl --user enable")
        out(f"enabled and started {UNIT_NAME}; logs: journalctl --user -u {UNIT_NAME}")
        out("to keep it running while you are logged out: loginctl enable-linger " + shlex.quote(_user()))
        return path
    if platform == "macos":
        path = launchd_plist_path()
        protected = mac_protected_folder(spec.workspace, Path.home())
        if protected:
            out(f"warning: the workspace is under ~/{protected}, which macOS hides from background processes; "
                "move it (e.g. to ~/KaalOrders) or give Python Full Disk Access")
        path.parent.mkdir(parents=True, exist_ok=True)
        spec.log_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(launchd_plist(spec))
        out(f"wrote {path}")
        domain = f"gui/{os.getuid()}"
        runner(["launchctl", "bootout", domain, str(path)])  # replacing an older copy; absence is fine
        _checked(runner(["launchctl", "bootstrap", domain, str(path)]), "launchctl bootstrap")
        out(f"loaded {LAUNCHD_LABEL}; logs in {spec.log_dir}")
        return path
    if platform == "windows":
        user = os.environ.get("USERNAME", "")
        path = spec.workspace / ".kaalwatch" / "kaalwatch-task.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(windows_task_xml(spec, user), encoding="utf-16")
        _checked(runner(["schtasks", "/Create", "/TN", TASK_NAME, "/XML", str(path), "/F"]), "schtasks /Create")
        runner(["schtasks", "/Run", "/TN", TASK_NAME])
        out(f"created the logon task {TASK_NAME!r} for {user}")
        return path
    raise KaalwatchError(f"no service support on {platform}", hint="run `kaalwatch run` under your supervisor")


def uninstall(*, platform: str | None = None, runner: Runner = _run, environ: Mapping[str, str] | None = None,
              out: Callable[[str], None] = print) -> None:
    platform = platform or _platform()
    if platform == "linux":
        path = systemd_unit_path(environ)
        if shutil.which("systemctl") is not None:
            runner(["systemctl", "--user", "disable", "--now", UNIT_NAME])
        if path.exists():
            path.unlink()
            out(f"removed {path}")
        else:
            out(f"no {path}; nothing to remove")
        if shutil.which("systemctl") is not None:
            runner(["systemctl", "--user", "daemon-reload"])
        return
    if platform == "macos":
        path = launchd_plist_path()
        runner(["launchctl", "bootout", f"gui/{os.getuid()}", str(path)])
        if path.exists():
            path.unlink()
            out(f"removed {path}")
        return
    if platform == "windows":
        _checked(runner(["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]), "schtasks /Delete")
        out(f"removed the logon task {TASK_NAME!r}")
        return
    raise KaalwatchError(f"no service support on {platform}")


def status(*, platform: str | None = None, runner: Runner = _run, environ: Mapping[str, str] | None = None) -> str:
    """One line: installed or not, and running or not, as the supervisor sees it."""
    platform = platform or _platform()
    if platform == "linux":
        path = systemd_unit_path(environ)
        if not path.exists():
            return f"not installed ({path} missing); run `kaalwatch service install`"
        if shutil.which("systemctl") is None:
            return f"installed at {path}; systemctl not found, so its state is unknown"
        state = runner(["systemctl", "--user", "is-active", UNIT_NAME]).stdout.strip() or "unknown"
        return f"installed at {path}; {UNIT_NAME} is {state}"
    if platform == "macos":
        path = launchd_plist_path()
        if not path.exists():
            return f"not installed ({path} missing); run `kaalwatch service install`"
        result = runner(["launchctl", "print", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"])
        state = "loaded" if result.returncode == 0 else "not loaded"
        return f"installed at {path}; {state}"
    if platform == "windows":
        result = runner(["schtasks", "/Query", "/TN", TASK_NAME])
        return f"logon task {TASK_NAME!r} " + ("installed" if result.returncode == 0 else "not installed")
    return f"no service support on {platform}"


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # getuser raises when no user name can be found (containers); the hint still helps
        return "$USER"
