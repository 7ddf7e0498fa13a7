"""PostgreSQL as a local daemon: its own cluster, run as the postgres user when we are root."""

from __future__ import annotations

import pwd
import signal
from pathlib import Path

import psycopg
from psycopg import sql

from opsgraph.tools.atomic_file import write_atomic
from opsgraph.tools.binaries import as_postgres_user, postgres_binary
from opsgraph.tools.environments.local.process import LOOPBACK, LocalStackError, Server, run_launcher, running_as_root

# sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
# The line that makes postgresql.conf read the settings OpsGraph writes.
_INCLUDE = "include 'opsgraph.conf'"


class PostgresServer(Server):
    process_name = "postgres"
    graceful_signal = signal.SIGINT  # what `pg_ctl stop -m fast` sends
    forceful_signal = signal.SIGQUIT  # what `pg_ctl stop -m immediate` sends

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "postmaster.pid"

    def binaries(self) -> list[str]:
        # PostgreSQL refuses to run as root; setpriv drops to the postgres user.
        return ["pg_ctl", "initdb", *(["setpriv"] if running_as_root() else [])]

    def data_exists(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def _tool(self, name: str) -> Path:
        """initdb/pg_ctl of the same installation, so that versions never mix."""
        return postgres_binary(name)

    def _command(self, name: str, *arguments: str | Path) -> list[str | Path]:
        """A PostgreSQL command line, wrapped to run as the postgres user when we are root.

        The capabilities keep DAC override so that the server can still write into
        the (root-owned) state folder after dropping privileges.
        """
        command: list[str | Path] = [self._tool(name), *arguments]
        if not running_as_root():
            return command
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LocalStackError(
                f"{self.label}: PostgreSQL cannot run as root and there is no 'postgres' "
                "user to run it as: install it with `apt-get install postgresql` "
                "or run OpsGraph as an ordinary user"
            ) from None
        return [*as_postgres_user(), *command]

    def _settings(self) -> str:
        """Settings OpsGraph owns, rewritten at every start so inventory edits apply.

        They live in an included file rather than on the command line so that
        ALTER SYSTEM (postgresql.auto.conf, read later) can still override them.
        """
        socket_dir = str(self.folder)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _MAX_SOCKET_PATH:
            socket_dir = ""  # too long for a Unix socket; OpsGraph only uses TCP
        quoted = socket_dir.replace("'", "''")
        return (
            "# Written by OpsGraph at every start; edit the inventory instead.\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{quoted}'\n"
            f"max_connections = {self.resource.local.max_connections}\n"
        )

    def _initdb(self) -> None:
        run_launcher(
            self._command(
                "initdb",
                "-D", self.data_dir,
                "-U", "postgres",
                "--auth=trust",  # a private instance reachable only on loopback
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            self.log_path,
            f"initdb for {self.label}",
            self.timeout,
        )  # fmt: skip

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        write_atomic(self.data_dir / "opsgraph.conf", self._settings())
        # Checked at every start, not just after initdb, so that an interrupted
        # first start cannot leave a server on the default port 5432.
        conf = self.data_dir / "postgresql.conf"
        if _INCLUDE not in conf.read_text():
            with conf.open("a") as handle:
                handle.write(f"\n{_INCLUDE}\n")
        run_launcher(
            self._command(
                "pg_ctl", "start", "-w",
                "-t", str(max(1, round(self.timeout))),
                "-D", self.data_dir,
                "-l", self.log_path,
            ),
            self.log_path,
            f"pg_ctl start for {self.label}",
            self.timeout + 5,
        )  # fmt: skip

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=LOOPBACK,
            port=self.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )

    def answers(self) -> bool:
        try:
            with self._connect():
                return True
        except psycopg.Error:
            return False

    def provision(self) -> None:
        """Create the inventory's roles and database if missing (idempotent).

        Local apps log in as `local.app_user`, an ordinary role that owns the database:
        an application should never hold superuser sessions, and OpsGraph never
        terminates superuser sessions, so a leak by the app stays fixable.
        """
        user = self.resource.connection.user
        app_user = self.resource.local.app_user
        database = self.resource.connection.database
        with self._connect() as conn:
            role_query = "SELECT 1 FROM pg_roles WHERE rolname = %s"
            for role in sorted({name for name in (user, app_user) if name and name != "postgres"}):
                if not conn.execute(role_query, (role,)).fetchone():
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(role)))
            database_query = "SELECT 1 FROM pg_database WHERE datname = %s"
            if database and not conn.execute(database_query, (database,)).fetchone():
                owner = sql.Identifier(app_user or user or "postgres")
                create = sql.SQL("CREATE DATABASE {} OWNER {}")
                conn.execute(create.format(sql.Identifier(database), owner))
