"""The external environment: servers someone else started (systemd, a script, by hand).

OpsGraph adopts such a server; it never replaces it. The inventory says how each
lifecycle operation is done — declared argv lists, a systemd unit, or not at all — and
this module runs exactly that, with a timeout, then waits until the server that is
there answers again. It never creates a data directory, never runs `initdb`, and
never starts a server of its own on the port: with no lifecycle configured, a restart
is refused with a message that says what to configure.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from opsgraph.tools.environments.liveness import answers
from opsgraph.tools.environments.local.process import read_pid, tail_lines
from opsgraph.tools.inventory import Environment, ExternalSettings, Inventory, Resource

_POLL_S = 0.1
_OUTPUT_CHARS = 2000


class LifecycleRefused(RuntimeError):
    """OpsGraph may not (or cannot) do this lifecycle operation on this server; the message says why."""


class LifecycleFailed(RuntimeError):
    """A declared lifecycle command failed or the server did not come back; the message has its output."""


@dataclass(frozen=True)
class ExternalStatus:
    """An external server after a lifecycle operation (the `ServerStatus` shape)."""

    name: str
    pid: int | None  # from paths.pid_file, when the inventory gives one
    running: bool
    managed_by_opsgraph: bool = False


def _settings(resource: Resource) -> ExternalSettings:
    if resource.environment is not Environment.EXTERNAL:
        raise LifecycleRefused(f"resource {resource.name!r} runs in the {resource.environment} environment")
    return resource.external


def not_configured(resource: Resource, operation: str) -> LifecycleRefused:
    """The refusal for an operation the inventory does not let OpsGraph do."""
    return LifecycleRefused(
        f"{resource.name} is not managed by OpsGraph (environment: external) and its inventory entry declares "
        f"no way to {operation} it, so OpsGraph will not. To allow it, set external.lifecycle: commands with "
        f"external.commands.{operation} (an argv list), or external.lifecycle: systemd with external.systemd.unit"
    )


def restart_refusal(resource: Resource, running: bool = True) -> str | None:
    """Why OpsGraph may not restart this server (or start it, when it is down), or None when it may.

    The one rule, for plans and tools alike: only an external server can say no in advance —
    it is restarted exactly as its inventory entry declares (`restart`, else `stop` then
    `start`, or just `start` when it is down), and with nothing declared there is no way.
    """
    if resource.environment is Environment.GCP:
        return f"{resource.name} runs in the gcp environment, which has no restart in this version"
    if resource.environment is not Environment.EXTERNAL:
        return None
    commands = resource.external.lifecycle_commands()
    if commands.restart is not None or (commands.start is not None and (not running or commands.stop is not None)):
        return None
    return str(not_configured(resource, "restart" if running else "start"))


class ExternalEnvironment:
    """Lifecycle operations for `environment: external` resources, exactly as the inventory declares them."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    def restart(self, resource_name: str) -> ExternalStatus:
        """Restart the server that is there: the declared `restart`, else `stop` (if it runs) and `start`.

        Refused when nothing is declared. Returns once the server answers again, or
        raises LifecycleFailed with the command's output and the log's last lines.
        """
        resource = self.inventory.get(resource_name)
        commands = _settings(resource).lifecycle_commands()
        running = answers(resource)
        if restart_refusal(resource, running) is not None:
            raise not_configured(resource, "restart")
        if commands.restart is not None:
            self._run(resource, "restart", commands.restart)
        else:
            assert commands.start is not None  # restart_refusal said there is a way
            if running and commands.stop is not None:
                self._run(resource, "stop", commands.stop)
                self._wait(resource, up=False)
            self._run(resource, "start", commands.start)
        self._wait(resource, up=True)
        return self.status(resource_name)

    def reload(self, resource_name: str) -> None:
        """Run the declared `reload` (re-read the config, keep the server's state)."""
        resource = self.inventory.get(resource_name)
        argv = _settings(resource).lifecycle_commands().reload
        if argv is None:
            raise not_configured(resource, "reload")
        self._run(resource, "reload", argv)

    def status(self, resource_name: str) -> ExternalStatus:
        """Running by the declared `status` command when there is one, else by a protocol check."""
        resource = self.inventory.get(resource_name)
        settings = _settings(resource)
        argv = settings.lifecycle_commands().status
        running = self._succeeds(argv, settings.timeout_s) if argv is not None else answers(resource)
        pid_file = settings.paths.pid_file
        return ExternalStatus(name=resource.name, pid=read_pid(pid_file) if pid_file else None, running=running)

    def log_tail(self, resource_name: str, lines: int = 50) -> list[str]:
        """The last lines of the declared log files (each file's lines, in the order listed)."""
        resource = self.inventory.get(resource_name)
        files = _settings(resource).paths.log_files
        if not files:
            raise LifecycleRefused(
                f"{resource.name} is not managed by OpsGraph and its inventory entry lists no log files; "
                "add external.paths.log_files"
            )
        found: list[str] = []
        for path in files:
            found += [f"{path.name}: {line}" for line in tail_lines(Path(path), lines)]
        return found[-lines:]

    # ---- running declared commands

    def _run(self, resource: Resource, operation: str, argv: list[str]) -> None:
        timeout = resource.external.timeout_s
        try:
            result = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            what = f"{resource.name}: {operation} command {argv}"
            raise LifecycleFailed(f"{what} did not finish within {timeout:g} s") from None
        except OSError as error:
            raise LifecycleFailed(f"{resource.name}: {operation} command {argv} could not run: {error}") from None
        if result.returncode != 0:
            output = (result.stderr + result.stdout).strip()[-_OUTPUT_CHARS:]
            raise LifecycleFailed(
                f"{resource.name}: {operation} command {argv} failed (exit status {result.returncode}): "
                f"{output or 'no output'}{self._log_hint(resource)}"
            )

    @staticmethod
    def _succeeds(argv: list[str], timeout: float) -> bool:
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout).returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            return False

    def _wait(self, resource: Resource, up: bool) -> None:
        timeout = resource.external.timeout_s
        deadline = time.monotonic() + timeout
        while answers(resource) is not up:
            if time.monotonic() > deadline:
                state = "answer" if up else "stop answering"
                raise LifecycleFailed(
                    f"{resource.name} did not {state} on {resource.connection.host}:{resource.connection.port} "
                    f"within {timeout:g} s{self._log_hint(resource)}"
                )
            time.sleep(_POLL_S)

    def _log_hint(self, resource: Resource) -> str:
        files = resource.external.paths.log_files
        lines = [line for path in files for line in tail_lines(Path(path), 5)]
        return ("; last log lines: " + " | ".join(lines)) if lines else ""
