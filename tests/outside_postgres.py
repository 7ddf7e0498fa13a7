"""A PostgreSQL started OUTSIDE OpsGraph, the way users have one: own data dir, scram auth, own log.

The cluster is initdb'd into the test's folder with `--auth=scram-sha-256` and a
superuser password given through a password file; `pg_ctl` starts it on a loopback
port with its own log. PostgreSQL refuses to run as root, so when the tests run as
root every server command goes through `setpriv` to the postgres user (keeping
DAC override, so it can still write the root-owned temporary folders). Nothing
here goes through OpsGraph: the tests then describe this server in an inventory.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from support import child_pids, free_port, wait_for

from opsgraph.tools.binaries import as_postgres_user, postgres_binary

PASSWORD = "s3cret-outside"
_TIMEOUT_S = 60


@dataclass
class OutsidePostgres:
    """One cluster in `folder`; `settings` are written into its own postgresql.conf before the first start."""

    folder: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    password: str = PASSWORD
    socket_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pg-")))  # short: sun_path

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "postgresql.conf"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def start_argv(self) -> list[str]:
        """How this server is started: what a user would put in `external.commands.start`."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        return [
            *as_postgres_user(), str(postgres_binary("pg_ctl")), "start", "-w", "-t", str(_TIMEOUT_S),
            "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file),
        ]  # fmt: skip

    def initdb(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / "pwfile"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        self._run(
            str(postgres_binary("initdb")), "-D", str(self.data_dir), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        password_file.unlink()
        if self.settings:
            with self.config_file.open("a") as handle:
                handle.write("\n# the test's own settings\n")
                handle.writelines(f"{name} = {value}\n" for name, value in self.settings.items())

    def start(self) -> None:
        result = subprocess.run(self.start_argv(), capture_output=True, text=True, timeout=_TIMEOUT_S + 10)
        assert result.returncode == 0, f"pg_ctl start failed: {result.stderr}{result.stdout}\n{self.log_tail()}"

    def stop(self) -> None:
        """Stop at once (teardown); a server that is not running is fine."""
        if self.postmaster_pid() is None:
            return
        subprocess.run(
            [
                *as_postgres_user(),
                str(postgres_binary("pg_ctl")),
                "stop",
                "-m",
                "immediate",
                "-w",
                "-D",
                str(self.data_dir),
            ],
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )

    def postmaster_pid(self) -> int | None:
        """The live postmaster's pid from postmaster.pid, or None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def kill_postmaster(self) -> int:
        """A crash: SIGKILL the postmaster, then wait until its children noticed and exited too."""
        pid = self.postmaster_pid()
        assert pid is not None, "the server is not running"
        children = child_pids(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(Path(f"/proc/{child}").exists() for child in [pid, *children]), "the backends to exit")
        return pid

    def connect(self, user: str = "postgres", password: str | None = None, **options: Any) -> psycopg.Connection[Any]:
        settings: dict[str, Any] = {"dbname": "postgres", "autocommit": True, "connect_timeout": 5, **options}
        secret = self.password if password is None else password
        return psycopg.connect(host="127.0.0.1", port=self.port, user=user, password=secret, **settings)

    def answers(self) -> bool:
        try:
            with self.connect():
                return True
        except psycopg.OperationalError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def cleanup(self) -> None:
        self.stop()
        pid = self.postmaster_pid()
        if pid is not None:  # pg_ctl could not stop it: make sure no server outlives the test
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _run(self, *argv: str) -> None:
        result = subprocess.run([*as_postgres_user(), *argv], capture_output=True, text=True, timeout=_TIMEOUT_S)
        assert result.returncode == 0, f"{argv[0]} failed: {result.stderr}{result.stdout}"


def listening(port: int) -> bool:
    """Whether anything accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def outside_postgres(
    folder: Path, settings: dict[str, str] | None = None, password: str = PASSWORD
) -> Iterator[OutsidePostgres]:
    """An initdb'd and started cluster, stopped (immediately) and cleaned up afterwards."""
    server = OutsidePostgres(folder, settings or {}, password=password)
    try:
        server.initdb()
        server.start()
        wait_for(server.answers, "the outside PostgreSQL to accept connections", _TIMEOUT_S)
        yield server
    finally:
        server.cleanup()
