"""A full PostgreSQL started outside OpsGraph: counted right, told from "down", relieved without a restart.

The server has max_connections 12 and superuser_reserved_connections 3, so ordinary
roles share 9 slots. OpsGraph connects as the superuser (as the README advises), so it
still gets in through the reserved slots when an application has taken the others.
The culprits are real sessions of an ordinary role: idle ones that set no
application_name, and long `pg_sleep` queries; a healthy application keeps its one
session busy with short queries throughout and must come out untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from outside_postgres import OutsidePostgres, outside_postgres
from support import run_unattended, session_alive, tool_output, wait_for

from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.records import Incident
from opsgraph.agents.runbooks import RUNBOOKS
from opsgraph.agents.runbooks.postgres import LONG_QUERY_S
from opsgraph.tools.inventory import Inventory, Resource, load_inventory, parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.snapshot import Health, Snapshot
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(120)

PASSWORD_ENV = "OPSGRAPH_TEST_PG_SATURATION_PASSWORD"
APP_PASSWORD_ENV = "OPSGRAPH_TEST_PG_SATURATION_APP_PASSWORD"
APP_PASSWORD = "app-secret"
MAX_CONNECTIONS, RESERVED = 12, 3
ORDINARY_SLOTS = MAX_CONNECTIONS - RESERVED


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsidePostgres]:
    settings = {
        "max_connections": str(MAX_CONNECTIONS),
        "superuser_reserved_connections": str(RESERVED),
        "include_if_exists": "'site.conf'",  # where the config test writes its bad line
    }
    with outside_postgres(tmp_path_factory.mktemp("pg-full"), settings) as running:
        with running.connect() as admin:
            admin.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
            admin.execute("CREATE DATABASE shop OWNER app")
        yield running


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch, server: OutsidePostgres) -> None:
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    monkeypatch.setenv(APP_PASSWORD_ENV, APP_PASSWORD)


def write_inventory(folder: Path, server: OutsidePostgres, user: str = "postgres", **external: Any) -> Path:
    secret = PASSWORD_ENV if user == "postgres" else APP_PASSWORD_ENV
    db = {
        "name": "db",
        "kind": "postgres",
        "environment": "external",
        "connection": {
            "host": "127.0.0.1", "port": server.port, "user": user, "database": "shop", "password_env": secret,
        },
        "external": {"paths": {"data_dir": str(server.data_dir), "config_file": str(server.config_file)}, **external},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "opsgraph.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "resources": [db]}))
    return path


def run(inventory: Inventory, folder: Path, tool: str, **args: Any) -> ToolOutcome:
    return run_tool(tool, {"resource": "db", **args}, ToolContext(inventory, folder / "state"), 60)


Open = Callable[..., psycopg.Connection[Any]]


@pytest.fixture
def open_session(server: OutsidePostgres) -> Iterator[Open]:
    """Sessions of the ordinary role `app` on `shop`; all closed after the test (terminated ones too)."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one(**options: Any) -> psycopg.Connection[Any]:
        conn = server.connect("app", APP_PASSWORD, dbname="shop", **options)
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


class HealthyApp:
    """One long-lived session of another application, running a short query every 50 ms."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.queries = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.conn.execute("SELECT count(*) FROM pg_class")
                self.queries += 1
            except psycopg.Error as error:
                self.errors.append(str(error))
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _sleep(conn: psycopg.Connection[Any], ended: list[str]) -> None:
    """A long query that the fix is expected to end: how it ended is recorded."""
    try:
        conn.execute("SELECT pg_sleep(120)")
        ended.append("finished")
    except psycopg.OperationalError as error:
        ended.append(str(error).strip())


def test_only_client_backends_count_against_the_ordinary_slots(
    server: OutsidePostgres, open_session: Open, tmp_path: Path
) -> None:
    inventory = load_inventory(write_inventory(tmp_path, server))
    sessions = [open_session(application_name="counted") for _ in range(3)]
    with server.connect() as admin:
        rows = admin.execute("SELECT backend_type FROM pg_stat_activity").fetchall()
    background = [row[0] for row in rows if row[0] != "client backend"]
    assert len(background) >= 4, background  # checkpointer, walwriter, background writer, launchers

    # Neither the background processes nor the probe itself count. Reads are moments: the admin
    # session above may still be exiting, so wait for the count to settle; a miscount never does.
    def settled() -> Snapshot | None:
        seen = probe(inventory.get("db"))
        return seen if seen.metrics["connections"] == len(sessions) else None

    seen = wait_for(settled, f"the probe to count the {len(sessions)} client sessions", 10)
    assert seen.health is Health.HEALTHY, seen.reasons
    metrics = seen.metrics
    assert metrics["usable_connections"] == ORDINARY_SLOTS
    assert metrics["superuser_reserved_connections"] == RESERVED and metrics["max_connections"] == MAX_CONNECTIONS
    assert metrics["connections_used_pct"] == round(100 * len(sessions) / ORDINARY_SLOTS, 2)
    assert int(metrics["background_processes"] or 0) >= 4  # autovacuum workers come and go: not an exact count

    facts = tool_output(run(inventory, tmp_path, "postgres_info"))
    for key in ("connections", "usable_connections", "superuser_reserved_connections", "connections_used_pct"):
        assert facts[key] == metrics[key], key


def test_a_full_server_is_relieved_by_ending_the_sessions_that_hold_it(
    server: OutsidePostgres, open_session: Open, tmp_path: Path
) -> None:
    healthy = HealthyApp(open_session(application_name="storefront"))
    idle = [open_session() for _ in range(5)]  # a leak: no application_name, never closed
    sleepers = [open_session() for _ in range(3)]
    culprits = {conn.info.backend_pid for conn in [*idle, *sleepers]}  # a closed connection forgets its pid
    ended: list[str] = []
    threads = [threading.Thread(target=_sleep, args=(conn, ended), daemon=True) for conn in sleepers]
    for thread in threads:
        thread.start()
    try:
        with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
            open_session().close()  # full for ordinary roles: 9 of 9 taken
        path = write_inventory(tmp_path, server)
        db = load_inventory(path).get("db")
        wait_for(
            lambda: float(probe(db).metrics.get("longest_active_query_s") or 0) >= LONG_QUERY_S + 0.5,
            "the sleeping queries to run long",
            30,
        )
        seen = probe(db)
        assert seen.symptom == "postgres_connections_exhausted" and seen.health is Health.FAILED, seen.reasons
        assert "only the reserved ones are left" in seen.reasons[0]

        # An ordinary role cannot even get in: still "full", never "down".
        as_app = load_inventory(write_inventory(tmp_path / "app", server, user="app"))
        refused = probe(as_app.get("db"))
        assert refused.symptom == "postgres_connections_exhausted", refused.reasons
        assert "OpsGraph could not get a connection slot" in refused.reasons[0]

        result = run_unattended(path, tmp_path / "state", "db", "inc-pg-full", verify_deadline_s=20.0)
        report = result.report
        assert report is not None, result.values.get("outcome_detail")
        assert report["resolved"] is True, report.get("outcome_detail")
        assert "exhausted" in report["root_cause"]
        assert [action["tool"] for action in report["actions"]] == ["postgres_kill_long_queries"] * 2
        leak, long_running = (action["args"] for action in report["actions"])
        assert leak["state"] == "idle" and leak["user"] == "app" and leak["application_name"] == ""
        assert long_running["state"] == "active" and long_running["user"] == "app"
        assert long_running["application_name"] == "" and long_running["min_duration_s"] >= LONG_QUERY_S

        terminated = {s["pid"] for action in result.values["actions"] for s in action["output"]["sessions"]}
        assert terminated == culprits
        for thread in threads:
            thread.join(timeout=10)
        assert len(ended) == 3 and all("terminat" in reason for reason in ended), ended
        assert not any(session_alive(conn) for conn in idle)
        queries = healthy.queries
        wait_for(lambda: healthy.queries > queries, "the healthy application to keep working", 10)
        assert healthy.errors == [] and session_alive(healthy.conn)
        assert probe(db).health is Health.HEALTHY
    finally:
        healthy.stop()


def test_a_config_line_the_server_would_reject_is_reported_before_any_reload(
    server: OutsidePostgres, tmp_path: Path
) -> None:
    site = server.data_dir / "site.conf"
    path = write_inventory(tmp_path, server)
    db = load_inventory(path).get("db")
    site.write_text("max_connections = 'abc'\nno_such_setting = 1\n")
    try:
        seen = probe(db)
        assert seen.symptom == "postgres_config_invalid" and seen.health is Health.DEGRADED, seen.reasons
        [reason] = seen.reasons
        assert "site.conf:1: max_connections = 'abc'" in reason and "takes an integer" in reason
        assert "site.conf:2: no_such_setting" in reason and "unrecognized configuration parameter" in reason

        result = run_unattended(path, tmp_path / "state", "db", "inc-pg-config", verify_deadline_s=5.0)
        report = result.report
        assert report is not None and report["outcome"] == "escalated", result.values.get("outcome_detail")
        assert report["actions"] == []
        assert "reported before anyone reloads" in str(report["outcome_detail"])
        assert "site.conf" in str(report["outcome_detail"])
        with server.connect() as admin:  # nothing was reloaded: the server still runs as it did
            assert admin.execute("SHOW max_connections").fetchone() == (str(MAX_CONNECTIONS),)
    finally:
        site.write_text("")
    assert probe(db).health is Health.HEALTHY


def _auto_conf(server: OutsidePostgres) -> str:
    return (server.data_dir / "postgresql.auto.conf").read_text()


def _auto_conf_settings(server: OutsidePostgres) -> list[tuple[Any, ...]]:
    with server.connect() as admin:
        return admin.execute(
            "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchall()


@pytest.mark.parametrize("before", [None, "11"])
def test_scale_connections_leaves_nothing_behind_when_the_restart_fails(
    server: OutsidePostgres, tmp_path: Path, before: str | None
) -> None:
    with server.connect() as admin:
        admin.execute("ALTER SYSTEM RESET max_connections")
        if before is not None:  # the operator's own ALTER SYSTEM, pending its restart
            admin.execute(f"ALTER SYSTEM SET max_connections = {before}")
    original = _auto_conf(server)
    inventory = load_inventory(write_inventory(tmp_path, server, lifecycle="commands", commands={"restart": ["false"]}))
    try:
        failed = run(inventory, tmp_path, "postgres_scale_connections", max_connections=20)
        assert not failed.ok
        assert "restart command ['false'] failed" in str(failed.error) and "was undone" in str(failed.error)
        assert _auto_conf(server) == original
        expected = [] if before is None else [("max_connections", before)]
        assert _auto_conf_settings(server) == expected
        with server.connect() as admin:
            admin.execute("SELECT pg_reload_conf()")
            assert admin.execute("SHOW max_connections").fetchone() == (str(MAX_CONNECTIONS),)
    finally:
        with server.connect() as admin:
            admin.execute("ALTER SYSTEM RESET max_connections")


def test_scale_connections_refuses_before_any_change_without_a_way_to_restart(
    server: OutsidePostgres, tmp_path: Path
) -> None:
    original = _auto_conf(server)
    inventory = load_inventory(write_inventory(tmp_path, server))  # lifecycle: none
    refused = run(inventory, tmp_path, "postgres_scale_connections", max_connections=20)
    assert not refused.ok and "not managed by OpsGraph" in str(refused.error)
    assert "nothing was changed" in str(refused.error)
    assert _auto_conf(server) == original and _auto_conf_settings(server) == []


# ---- the runbook's choices where only a restart would help (facts as postgres_info reports them)


def _external(lifecycle: dict[str, Any]) -> Resource:
    db = {"name": "db", "kind": "postgres", "environment": "external", "connection": {"port": 5432}}
    return parse_inventory({"resources": [{**db, "external": lifecycle}]}).get("db")


def _reader(outcome: ToolOutcome) -> ReadTool:
    def read(tool: str, args: dict[str, Any]) -> ToolOutcome:
        assert tool == "postgres_info"
        return outcome

    return read


def _incident(symptom: str) -> Incident:
    return Incident(
        incident_id="inc-unit", resource="db", kind="postgres", symptom=symptom, fingerprint=f"db:{symptom}",
        severity=Health.FAILED, fault_started_at=0.0, detected_at=0.0,
    )  # fmt: skip


def _busy_facts() -> dict[str, Any]:
    """Every ordinary slot taken by short active queries of many applications: real demand."""
    groups = [
        {
            "application_name": f"web-{n}", "sessions": 3, "states": {"active": 3}, "users": ["web"],
            "superuser_sessions": 0, "idle": 0, "idle_superuser": 0, "idle_min_s": None, "idle_max_s": None,
        }
        for n in range(3)
    ]  # fmt: skip
    return {
        "connections": 9, "max_connections": 12, "superuser_reserved_connections": 3, "reserved_connections": 0,
        "usable_connections": 9, "connected_as": "postgres", "hidden_sessions": 0, "by_state": {"active": 9},
        "by_application": groups, "long_running": [], "blocked_queries": 0, "blockers": [],
        "locks": {"granted": 9, "waiting": 0, "by_mode": {}},
    }  # fmt: skip


def test_exhaustion_that_only_a_restart_could_relieve_escalates_when_opsgraph_may_not_restart() -> None:
    read = _reader(ToolOutcome(ok=True, output=_busy_facts(), duration_s=0.0))
    symptom = "postgres_connections_exhausted"
    unmanaged = RUNBOOKS[symptom].plan(_incident(symptom), _external({}), read)
    assert unmanaged.steps == []
    assert "only a restart" in unmanaged.summary and "not managed by OpsGraph" in unmanaged.summary

    restartable = _external({"lifecycle": "commands", "commands": {"restart": ["true"]}})
    [scale] = RUNBOOKS[symptom].plan(_incident(symptom), restartable, read).steps
    assert scale.tool == "postgres_scale_connections" and scale.args["max_connections"] > 12


def test_no_slot_even_for_opsgraph_escalates_and_a_crash_without_lifecycle_is_not_restarted() -> None:
    refused = ToolOutcome(
        ok=False,
        error="postgres_info failed: ToolError: cannot connect to db: FATAL:  sorry, too many clients already",
        duration_s=0.0,
    )
    symptom = "postgres_connections_exhausted"
    diagnosis = RUNBOOKS[symptom].diagnose(
        _incident(symptom), Snapshot(resource="db", kind="postgres", health=Health.FAILED, taken_at=0.0),
        _reader(refused),
    )  # fmt: skip
    assert "reserved ones too" in diagnosis.root_cause
    plan = RUNBOOKS[symptom].plan(_incident(symptom), _external({}), _reader(refused))
    assert plan.steps == [] and "a human decides" in plan.summary

    down = RUNBOOKS["postgres_unreachable"].plan(_incident("postgres_unreachable"), _external({}), _reader(refused))
    assert down.steps == [] and "not managed by OpsGraph" in down.summary
