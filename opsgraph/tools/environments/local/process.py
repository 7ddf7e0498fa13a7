"""Plumbing shared by every local server: pid files, liveness, ports, logs, launchers.

Also the base class that each server kind fills in, and the two types LocalStack
hands out (its error and a server's status).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from opsgraph.tools.inventory import Inventory, Resource, ResourceKind

LOOPBACK = "127.0.0.1"
_LOG_LINES_IN_ERRORS = 20

Record = TypeVar("Record", bound=BaseModel)


class LocalStackError(RuntimeError):
    """A local server could not be started or stopped; the message says why and what to do."""


class ProcessStatus(BaseModel):
    """What one local server is doing, as seen from any process."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ResourceKind
    port: int
    pid: int | None
    running: bool  # the pid is alive AND the server answers on its port
    log_path: Path
    # Why this status may be wrong (its record is unreadable, so the inventory's settings were probed).
    problem: str | None = None


def read_record(path: Path, model: type[Record], what_to_do: str) -> Record | None:
    """A JSON record OpsGraph wrote in the state folder, None if there is none.

    An empty, undecodable or invalid file is a LocalStackError naming it and ending with
    ``what_to_do``: a torn record must be seen, not taken for "never started".
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if not data.strip():
        raise LocalStackError(f"{path} is empty (a write to it was cut off); {what_to_do}")
    try:
        return model.model_validate_json(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise LocalStackError(f"{path} is not a valid record ({where}: {first['msg']}); {what_to_do}") from None


def read_pid(path: Path) -> int | None:
    """First token of a pid file (postmaster.pid has more lines), or None."""
    try:
        first = path.read_text().split(maxsplit=1)
    except FileNotFoundError:
        return None
    return int(first[0]) if first and first[0].isdigit() else None


def is_alive(pid: int, process_name: str) -> bool:
    """Whether ``pid`` is a live (non-zombie) process called ``process_name``.

    The name check stops a stale pid file, whose pid the kernel has since given to
    an unrelated program, from passing for a running server. The zombie check
    matters because daemons are re-parented to init, which may reap them late.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user (PostgreSQL runs as postgres)
    if not Path("/proc/self").exists():
        return True  # not Linux: existence is all we can tell
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # Format: "pid (comm) state ..."; comm may contain spaces and parentheses.
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    state = stat[stat.rindex(")") + 2]
    return state != "Z" and comm == process_name[:15]  # the kernel truncates comm


def port_in_use(port: int) -> bool:
    """Whether something already holds 127.0.0.1:port (listening or merely bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a file, reading only its end (logs can grow large)."""
    if lines <= 0:
        return []
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        start, data = end, b""
        while start > 0 and data.count(b"\n") <= lines:
            start = max(0, start - 8192)
            handle.seek(start)
            data = handle.read(end - start)
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def log_excerpt(path: Path) -> str:
    """The end of a server's log, worded to close an error message."""
    tail = tail_lines(path, _LOG_LINES_IN_ERRORS)
    if not tail:
        return f"(the log {path} is empty)"
    return f"last lines of {path}:\n" + "\n".join(f"  {line}" for line in tail)


def run_launcher(command: Sequence[str | Path], log_path: Path, what: str, timeout: float) -> None:
    """Run a launcher command, appending its output to the server's log.

    Output goes to a file, never a pipe: a daemon that inherits a pipe would keep
    it open and make us wait for an EOF that never comes.
    """
    with log_path.open("ab") as log:
        try:
            result = subprocess.run(
                [str(part) for part in command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LocalStackError(f"{what} did not finish within {timeout:.0f} s; {log_excerpt(log_path)}") from None
    if result.returncode != 0:
        raise LocalStackError(f"{what} failed (exit status {result.returncode}); {log_excerpt(log_path)}")


def running_as_root() -> bool:
    """Whether we are root, which PostgreSQL refuses and nginx workers would drop."""
    return os.geteuid() == 0


class Server(ABC):
    """One daemon: how to start it, how to tell it answers, and how to stop it.

    Subclasses describe a kind; the orchestration (waiting, timeouts, port checks)
    lives in LocalStack so that it is written once.
    """

    process_name: ClassVar[str]
    # Stop politely first; if the process outlives the timeout, send the second one.
    graceful_signal: ClassVar[signal.Signals]
    forceful_signal: ClassVar[signal.Signals]

    def __init__(self, resource: Resource, folder: Path, timeout: float, inventory: Inventory) -> None:
        self.resource = resource
        self.folder = folder
        self.timeout = timeout
        self.inventory = inventory  # for links to other resources (an app's database, a proxy's upstream)

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def port(self) -> int:
        return self.resource.connection.port

    @property
    def label(self) -> str:
        return f"{self.name} ({self.resource.kind})"

    @property
    @abstractmethod
    def log_path(self) -> Path: ...

    @property
    @abstractmethod
    def pid_path(self) -> Path: ...

    @abstractmethod
    def binaries(self) -> list[str]:
        """Executables that start() needs, checked before anything starts."""

    @abstractmethod
    def start(self) -> None:
        """Launch the daemon; returns once the launcher has exited (not once it answers)."""

    @abstractmethod
    def answers(self) -> bool:
        """Whether the server does its job on its port (a protocol-level check)."""

    def provision(self) -> None:  # noqa: B027 — an optional hook: most kinds have nothing to create
        """Create what the inventory expects to exist inside a running server."""

    def data_exists(self) -> bool:
        """Whether the data this server runs on is the one OpsGraph created (default: nothing to check)."""
        return self.folder.is_dir()

    def pid(self) -> int | None:
        """The server's pid if it is alive, else None (a stale pid file counts as none)."""
        pid = read_pid(self.pid_path)
        return pid if pid is not None and is_alive(pid, self.process_name) else None

    def remove_stale_pid_file(self) -> None:
        """Forget a pid file left by a crash so that it cannot be mistaken for the new one."""
        if read_pid(self.pid_path) is not None and self.pid() is None:
            self.pid_path.unlink(missing_ok=True)

    def status(self) -> ProcessStatus:
        pid = self.pid()
        return ProcessStatus(
            name=self.name,
            kind=self.resource.kind,
            port=self.port,
            pid=pid,
            running=pid is not None and self.answers(),
            log_path=self.log_path,
        )
