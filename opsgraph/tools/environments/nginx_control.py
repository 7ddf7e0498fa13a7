"""Controlling a running nginx from its config file, prefix and pid file: test, reload, find its processes.

Whoever started it — OpsGraph's local environment (`LocalNginx` knows that layout) or its
owner (`environment: external`, built from the inventory's declared paths in
`nginx_tools.status`) — nginx is controlled the same way: `nginx -t` on the file on disk,
a graceful reload (SIGHUP or a declared reload command) that is only done once new
workers run, and the master's workers found through /proc.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsgraph.tools.binaries import find_binary
from opsgraph.tools.environments.local.process import is_alive, read_pid, tail_lines

_RELOAD_POLL_S = 0.05
_LOG_QUIET_S = 0.8  # longer than nginx's 500 ms between bind() retries


@dataclass(frozen=True)
class ConfigTest:
    ok: bool
    output: str  # what `nginx -t` printed: the error, or warnings on success


class NginxControlError(RuntimeError):
    """nginx refused or missed a control step (a reload); the message has its own words for why."""


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, ... (comm may hold spaces and parentheses)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2 :].split()


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def process_age_s(pid: int) -> float | None:
    """Seconds since the process started (its start time in /proc, against the uptime), None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime, in clock ticks
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return max(0.0, uptime - started)


def master_command_line(master: int) -> list[str]:
    """The master's title split into words ("nginx: master process nginx -p /x/ -c /y"); [] if gone."""
    try:
        title = Path(f"/proc/{master}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, UnicodeDecodeError):
        return []
    return title.split()


@dataclass(frozen=True)
class NginxControl:
    """An nginx we can control given its config file, prefix and pid file — started by OpsGraph or not.

    ``prefix`` is what ``-p`` says (relative paths in the config resolve against it); None
    leaves nginx's compiled-in prefix, as a server started without ``-p`` has it.
    ``startup_log`` is ``-e``: the log nginx writes before it has read its config
    ("stderr" keeps `nginx -t` from touching a log file of someone else's server).
    """

    config_path: Path
    pid_path: Path | None
    prefix: Path | None
    error_log: Path | None
    startup_log: str

    def command(self, *arguments: str) -> list[str]:
        prefix = ["-p", f"{self.prefix}/"] if self.prefix is not None else []
        return [str(find_binary("nginx")), "-e", self.startup_log, *prefix, "-c", str(self.config_path), *arguments]

    # ---- processes

    def master_pid(self) -> int | None:
        pid = read_pid(self.pid_path) if self.pid_path is not None else None
        return pid if pid is not None and is_alive(pid, "nginx") else None

    def worker_pids(self, master: int) -> set[int]:
        """Live children of the master: its workers (of every generation still running)."""
        found: set[int] = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and parent_pid(int(entry.name)) == master and is_alive(int(entry.name), "nginx"):
                found.add(int(entry.name))
        return found

    def wait_for_exit(self, pids: set[int], timeout_s: float) -> set[int]:
        """Wait until these processes (old workers) exit; returns those still alive."""
        deadline = time.monotonic() + timeout_s
        alive = {pid for pid in pids if is_alive(pid, "nginx")}
        while alive and time.monotonic() < deadline:
            time.sleep(_RELOAD_POLL_S)
            alive = {pid for pid in alive if is_alive(pid, "nginx")}
        return alive

    # ---- config

    def test_config(self, timeout_s: float = 10.0) -> ConfigTest:
        """``nginx -t`` on the config file as it is on disk now."""
        try:
            result = subprocess.run(
                self.command("-t"),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return ConfigTest(False, f"nginx -t did not finish within {timeout_s:.0f} s")
        output = (result.stderr + result.stdout).strip()
        return ConfigTest(result.returncode == 0, output)

    def reload(self, timeout_s: float = 10.0, trigger: Callable[[], None] | None = None) -> set[int]:
        """Ask for a reload and wait until the master runs a new generation of workers.

        ``trigger`` asks for it (e.g. a reload command the inventory declares); by default
        SIGHUP goes to the master. nginx answers a failed reload (e.g. a port it cannot
        bind, which ``nginx -t`` does not check) by logging ``[emerg]`` and keeping the old
        workers; that is reported as a NginxControlError with the log lines. Returns the
        new workers' pids.
        """
        master = self.master_pid()
        if master is None:
            raise NginxControlError(f"nginx with pid file {self.pid_path} is not running; nothing to reload")
        before = self.worker_pids(master)
        log_offset = self.error_log.stat().st_size if self.error_log and self.error_log.exists() else 0
        if trigger is None:
            os.kill(master, signal.SIGHUP)
        else:
            trigger()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any("[emerg]" in line for line in self._log_since(log_offset)):
                emerg = [line for line in self._quiet_log_since(log_offset, deadline) if "[emerg]" in line]
                raise NginxControlError("nginx refused the reload and kept its old workers: " + "; ".join(emerg[-2:]))
            new = self.worker_pids(master) - before
            if new:
                return new
            time.sleep(_RELOAD_POLL_S)
        raise NginxControlError(f"nginx started no new workers within {timeout_s:.0f} s of the reload")

    # ---- the error log

    def _quiet_log_since(self, offset: int, deadline: float) -> list[str]:
        """The log from ``offset`` once nginx stops writing to it: a failed bind is retried
        every 500 ms for ~2.5 s, and a SIGHUP sent meanwhile would be blamed for it."""
        lines = self._log_since(offset)
        while time.monotonic() < deadline:
            time.sleep(_LOG_QUIET_S)
            latest = self._log_since(offset)
            if len(latest) == len(lines):
                return latest
            lines = latest
        return lines

    def _log_since(self, offset: int) -> list[str]:
        if self.error_log is None:
            return []
        try:
            with self.error_log.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def error_log_tail(self, lines: int) -> list[str]:
        return tail_lines(self.error_log, lines) if self.error_log is not None else []
