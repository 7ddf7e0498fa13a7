"""A crashed PostgreSQL that OpsGraph did not start: restarted as declared, with its own data — or refused.

The server is started outside OpsGraph (own data directory, scram-sha-256 auth, a
superuser password OpsGraph reads from the environment), holds a database with a
table and rows, and is described as `environment: external`. Its postmaster is
SIGKILLed (a crash). With a declared start command, the incident graph brings back
*that* cluster (same system identifier, same rows, auth still enforced); with no
lifecycle it refuses, escalates, and leaves the data directory exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from outside_postgres import OutsidePostgres, listening, outside_postgres
from support import run_unattended

from opsgraph.graph.runtime import RunResult
from opsgraph.tools.inventory import load_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

pytestmark = pytest.mark.timeout(120)

PASSWORD_ENV = "OPSGRAPH_TEST_PG_EXTERNAL_PASSWORD"
ROWS = 250


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OutsidePostgres]:
    with outside_postgres(tmp_path / "pg") as running:
        monkeypatch.setenv(PASSWORD_ENV, running.password)
        with running.connect() as admin:
            admin.execute("CREATE DATABASE shop")
        with running.connect(dbname="shop") as shop:
            shop.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
            shop.execute("INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, %s) g", (ROWS,))
        yield running


def inventory(folder: Path, server: OutsidePostgres, **lifecycle: Any) -> Path:
    db = {
        "name": "db",
        "kind": "postgres",
        "environment": "external",
        "connection": {
            "host": "127.0.0.1", "port": server.port, "user": "postgres", "database": "shop",
            "password_env": PASSWORD_ENV,
        },
        "external": {
            **lifecycle,
            "paths": {
                "data_dir": str(server.data_dir), "config_file": str(server.config_file),
                "log_files": [str(server.log_file)], "pid_file": str(server.pid_file),
            },
        },
    }  # fmt: skip
    path = folder / "opsgraph.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "resources": [db]}))
    return path


def run_incident(folder: Path, path: Path, incident_id: str) -> RunResult:
    return run_unattended(path, folder / "state", "db", incident_id, verify_deadline_s=30.0)


def system_identifier(server: OutsidePostgres) -> int:
    with server.connect() as admin:
        row = admin.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


def test_a_crash_is_restarted_through_the_declared_command_with_the_data_intact(
    server: OutsidePostgres, tmp_path: Path
) -> None:
    path = inventory(tmp_path, server, lifecycle="commands", commands={"start": server.start_argv()})
    cluster = system_identifier(server)
    killed = server.kill_postmaster()
    db = load_inventory(path).get("db")
    assert probe(db).symptom == "postgres_unreachable"

    result = run_incident(tmp_path, path, "inc-pg-crash")
    report = result.report
    assert report is not None, result.values.get("outcome_detail")
    assert report["resolved"] is True, report.get("outcome_detail")
    assert [(a["tool"], a["status"]) for a in report["actions"]] == [("postgres_restart", "ok")]

    restarted = server.postmaster_pid()
    assert restarted is not None and restarted != killed  # a new postmaster, on the same data directory
    assert system_identifier(server) == cluster  # the same cluster, not a fresh initdb
    with server.connect(dbname="shop") as shop:
        assert shop.execute("SELECT count(*), max(item) FROM orders").fetchone() == (ROWS, "item-99")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        server.connect(password="wrong").close()  # scram is still enforced
    assert probe(db).health is Health.HEALTHY
    assert not (tmp_path / "state" / "local").exists()  # nothing of OpsGraph's own was started


def test_without_a_lifecycle_a_crash_is_escalated_and_nothing_is_started(
    server: OutsidePostgres, tmp_path: Path
) -> None:
    path = inventory(tmp_path, server)  # lifecycle: none
    version = server.data_dir / "PG_VERSION"
    before = (version.read_text(), version.stat().st_mtime_ns, sorted(p.name for p in server.data_dir.iterdir()))
    server.kill_postmaster()

    result = run_incident(tmp_path, path, "inc-pg-unmanaged")
    report = result.report
    assert report is not None and report["outcome"] == "escalated", result.values.get("outcome_detail")
    assert "not managed by OpsGraph" in str(report["outcome_detail"])
    assert all(action["tool"] != "postgres_restart" or action["status"] != "ok" for action in report["actions"])

    assert not listening(server.port)  # no server of any kind was put on the port
    assert server.postmaster_pid() is None
    after = (version.read_text(), version.stat().st_mtime_ns, sorted(p.name for p in server.data_dir.iterdir()))
    assert after == before  # no initdb, nothing created in the data directory
    assert not (tmp_path / "state" / "local").exists()


def test_rejected_credentials_are_not_an_outage(
    tmp_path: Path, server: OutsidePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that refuses OpsGraph's password is up: no restart is planned, a human fixes the credentials."""
    start = {"lifecycle": "commands", "commands": {"start": server.start_argv()}}
    path = inventory(tmp_path, server, **start)
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    pid = server.postmaster_pid()
    done = run_incident(tmp_path, path, "inc-pg-auth")
    assert done.values["incident"]["symptom"] == "postgres_auth_failed"
    assert "refused OpsGraph's credentials" in done.values["snapshot_before"]["reasons"][0]
    assert done.values["outcome"] == "escalated" and done.values.get("actions", []) == []
    assert server.postmaster_pid() == pid
