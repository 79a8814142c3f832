"""Register the runner with the operating system: it starts at boot or logon and after a crash.

`runner.py service install | uninstall | status [--dry-run]`:
- Windows: a Task Scheduler task, defined in the XML that `schtasks /Create /XML` takes. It
  starts at boot (and at logon, in case the boot trigger was missed), runs whether or not the
  user is logged on, starts when available after a missed start, restarts every minute after a
  failure (up to 999 times), has no time limit, and ignores a second start while one runs.
  `schtasks` asks for the account's password once (`/RP *`), as "run whether the user is logged
  on or not" needs it.
- Linux: a systemd user unit (`~/.config/systemd/user/daybreak-runner.service`), enabled and
  started with `systemctl --user`; `Restart=on-failure`. It starts at boot without a login once
  `loginctl enable-linger` is set for the user (install says so).
- macOS: a launchd agent (`~/Library/LaunchAgents/com.daybreak.runner.plist`), `RunAtLoad` and
  `KeepAlive` on failure.
Definitions are plain text built here and checked by tests/test_service.py (parsed, fields
checked; `systemd-analyze verify` where the machine has it). `--dry-run` prints the definition
and the commands instead of running them.
"""

from __future__ import annotations

import plistlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from daybreak.state import StateLayout

TASK_NAME = "daybreak-runner"
UNIT_NAME = "daybreak-runner.service"
LAUNCHD_LABEL = "com.daybreak.runner"
TASK_XMLNS = "http://schemas.microsoft.com/windows/2004/02/mit/task"


@dataclass(frozen=True)
class Target:
    """What the service runs: this Python, runner.py, the config, from the project folder."""

    python: Path
    runner: Path
    config: Path
    workdir: Path
    user: str = ""  # Windows: DOMAIN\\user the task runs as (default: the current user)

    @property
    def arguments(self) -> list[str]:
        return [str(self.runner), "--config", str(self.config)]


@dataclass
class Plan:
    """A service definition and the commands that register, remove or query it."""

    platform: str  # windows | linux | macos
    path: Path  # where the definition is written
    definition: str
    install: list[list[str]] = field(default_factory=list)
    uninstall: list[list[str]] = field(default_factory=list)
    status: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _quote_windows(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


def windows_task_xml(target: Target) -> str:
    """The Task Scheduler definition (schema 1.2), as `schtasks /Create /XML` takes it."""
    user = f"\n      <UserId>{escape(target.user)}</UserId>" if target.user else ""
    arguments = " ".join(_quote_windows(a) for a in target.arguments)
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="{TASK_XMLNS}">
  <RegistrationInfo>
    <Description>daybreak runner: the data jobs on their schedules, the status page</Description>
    <URI>\\{TASK_NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <BootTrigger>
      <Enabled>true</Enabled>
      <Delay>PT1M</Delay>
    </BootTrigger>
    <LogonTrigger>
      <Enabled>true</Enabled>{user}
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">{user}
      <LogonType>Password</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>7</Priority>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(str(target.python))}</Command>
      <Arguments>{escape(arguments)}</Arguments>
      <WorkingDirectory>{escape(str(target.workdir))}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def systemd_unit(target: Target) -> str:
    """A systemd user unit that keeps the runner up."""
    command = " ".join(_quote_systemd(a) for a in [str(target.python), *target.arguments])
    return f"""[Unit]
Description=daybreak runner: data jobs on their schedules, status page
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
WorkingDirectory={target.workdir}
ExecStart={command}
Restart=on-failure
RestartSec=30
# SIGTERM lets running jobs finish for the runner's --grace seconds (60) first.
KillSignal=SIGTERM
TimeoutStopSec=90

[Install]
WantedBy=default.target
"""


def _quote_systemd(arg: str) -> str:
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"' if " " in arg else arg


def launchd_plist(target: Target, log_dir: Path) -> str:
    """A launchd agent that keeps the runner up."""
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": [str(target.python), *target.arguments],
            "WorkingDirectory": str(target.workdir),
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},
            "ThrottleInterval": 30,
            "StandardOutPath": str(log_dir / "runner.launchd.log"),
            "StandardErrorPath": str(log_dir / "runner.launchd.log"),
        }
    ).decode("utf-8")


def platform_name(system: str = sys.platform) -> str:
    if system.startswith("win"):
        return "windows"
    if system == "darwin":
        return "macos"
    return "linux"


def plan(target: Target, platform: str, home: Path, state: StateLayout) -> Plan:
    """What `service install | uninstall | status` does on `platform`."""
    if platform == "windows":
        path = state.root / f"{TASK_NAME}.xml"
        user = ["/RU", target.user, "/RP", "*"] if target.user else ["/RP", "*"]
        return Plan(
            "windows", path, windows_task_xml(target),
            install=[["schtasks", "/Create", "/TN", TASK_NAME, "/XML", str(path), "/F", *user],
                     ["schtasks", "/Run", "/TN", TASK_NAME]],
            uninstall=[["schtasks", "/End", "/TN", TASK_NAME],
                       ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]],
            status=[["schtasks", "/Query", "/TN", TASK_NAME, "/V", "/FO", "LIST"]],
            notes=["schtasks asks for the account's password once: the task runs whether or not "
                   "the user is logged on, which Windows allows only with it."],
        )  # fmt: skip
    if platform == "macos":
        path = home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
        return Plan(
            "macos", path, launchd_plist(target, state.logs),
            install=[["launchctl", "load", "-w", str(path)]],
            uninstall=[["launchctl", "unload", "-w", str(path)]],
            status=[["launchctl", "list", LAUNCHD_LABEL]],
        )  # fmt: skip
    path = home / ".config" / "systemd" / "user" / UNIT_NAME
    return Plan(
        "linux", path, systemd_unit(target),
        install=[["systemctl", "--user", "daemon-reload"],
                 ["systemctl", "--user", "enable", "--now", UNIT_NAME]],
        uninstall=[["systemctl", "--user", "disable", "--now", UNIT_NAME]],
        status=[["systemctl", "--user", "status", "--no-pager", UNIT_NAME]],
        notes=["to start it at boot without logging in: loginctl enable-linger $USER"],
    )  # fmt: skip


Runner = Callable[[list[str]], int]


def _run(command: list[str]) -> int:
    return subprocess.call(command)


def apply(action: str, p: Plan, *, dry_run: bool, run: Runner = _run) -> list[str]:
    """Carry out (or, dry, describe) `install`, `uninstall` or `status`; the lines to print."""
    said: list[str] = []
    commands = {"install": p.install, "uninstall": p.uninstall, "status": p.status}[action]
    if action == "install":
        said.append(f"# {p.platform}: {p.path}")
        said.append(p.definition.rstrip())
        if not dry_run:
            p.path.parent.mkdir(parents=True, exist_ok=True)
            encoding = "utf-16" if p.platform == "windows" else "utf-8"  # as the XML declares
            p.path.write_text(p.definition, encoding=encoding)
    for command in commands:
        said.append(("would run: " if dry_run else "running: ") + " ".join(command))
        if not dry_run:
            code = run(command)
            if code != 0 and action != "status":
                said.append(f"{command[0]} exited with {code}")
                break
    if action == "uninstall" and not dry_run:
        p.path.unlink(missing_ok=True)
    said += [f"note: {n}" for n in p.notes] if action == "install" else []
    return said
