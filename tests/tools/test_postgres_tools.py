"""Every PostgreSQL tool against a real private PostgreSQL, and the rules the kill tool never breaks.

OpsGraph connects as the superuser here, so the server itself would let it terminate
anything: whatever is spared below is spared by the tool's own code. The sessions it
must spare are real: a superuser's session, a walsender (a replication connection of
a non-superuser REPLICATION role), sessions named like OpsGraph's, and its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from support import Stack, free_port, running_stack, session_alive, tool_output, wait_for

from opsgraph.agents.records import PlanStep
from opsgraph.graph.policy import ApprovalMode, review_step
from opsgraph.graph.schemas import StepVerdict
from opsgraph.tools import postgres_tools
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.probes import probe
from opsgraph.tools.redaction import MASK
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import ToolOutcome, run_tool
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(60)

MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    db = {
        "name": "db",
        "kind": "postgres",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": free_port(), "user": "postgres", "database": "shop"},
        "local": {"max_connections": MAX_CONNECTIONS},
    }
    with running_stack(tmp_path_factory.mktemp("pg"), [db]) as running:
        with connect(running, "postgres") as admin:
            admin.execute("CREATE ROLE app LOGIN")
            admin.execute("CREATE ROLE repl LOGIN REPLICATION")  # not a superuser: only its backend type protects it
            admin.execute("CREATE ROLE watcher LOGIN")
            admin.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
            admin.execute("GRANT ALL ON items TO app")
        yield running


def connect(stack: Stack, user: str, **options: Any) -> psycopg.Connection[Any]:
    port = stack.inventory.get("db").connection.port
    options = {"dbname": "shop", "autocommit": True, **options}
    return psycopg.connect(host="127.0.0.1", port=port, user=user, **options)


Open = Callable[..., psycopg.Connection[Any]]


@pytest.fixture
def open_session(stack: Stack) -> Iterator[Open]:
    """Open sessions as any role; all are closed after the test (terminated ones included)."""
    opened: list[psycopg.Connection[Any]] = []

    def open_one(user: str, application_name: str, **options: Any) -> psycopg.Connection[Any]:
        conn = connect(stack, user, application_name=application_name, **options)
        opened.append(conn)
        return conn

    yield open_one
    for conn in opened:
        conn.close()


def run(stack: Stack, tool: str, **args: Any) -> ToolOutcome:
    return run_tool(tool, {"resource": "db", **args}, ToolContext(stack.inventory, stack.state_dir), 30)


def block_on_items(
    stack: Stack, open_session: Open, waiters: int
) -> tuple[psycopg.Connection[Any], list[threading.Thread]]:
    """A session (`locker`) idle in transaction with `items` locked; `waiters` sessions queue behind it."""
    holder = open_session("app", "locker", autocommit=False)
    holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
    threads = []
    for _ in range(waiters):
        waiter = open_session("app", "waiter")
        thread = threading.Thread(target=lambda c=waiter: c.execute("SELECT count(*) FROM items"), daemon=True)
        thread.start()
        threads.append(thread)
    wait_for(lambda: tool_output(run(stack, "postgres_info"))["blocked_queries"] >= waiters, "the waiters to queue")
    return holder, threads


def test_catalogue_declares_the_postgres_tools() -> None:
    risks = {name: spec.risk for name, spec in CATALOGUE.items() if name.startswith("postgres_")}
    assert risks == {
        "postgres_info": Risk.READ,
        "postgres_kill_long_queries": Risk.DISRUPTIVE,
        "postgres_scale_connections": Risk.DISRUPTIVE,
        "postgres_vacuum": Risk.SAFE,
        "postgres_restart": Risk.DISRUPTIVE,
    }
    assert CATALOGUE["postgres_scale_connections"].undo is not None


def test_info_names_who_holds_connections_and_locks(stack: Stack, open_session: Open) -> None:
    for _ in range(3):
        open_session("app", "leaky")
    holder, threads = block_on_items(stack, open_session, waiters=2)

    def counted_alike() -> dict[str, Any] | None:
        """postgres_info and the probe count connections the same way. Two reads are two moments
        (a session of an earlier test may still be exiting), so they must agree once, not at once;
        a real difference in counting never agrees."""
        facts = tool_output(run(stack, "postgres_info", long_query_s=0))
        return facts if facts["connections"] == probe(stack.inventory.get("db")).metrics["connections"] else None

    facts = wait_for(counted_alike, "postgres_info and the probe to count the same connections", 10)
    assert facts["max_connections"] == MAX_CONNECTIONS and facts["connected_as_superuser"] is True
    leaky = next(group for group in facts["by_application"] if group["application_name"] == "leaky")
    assert leaky["sessions"] == 3 and leaky["idle"] == 3 and leaky["users"] == ["app"]
    assert leaky["superuser_sessions"] == 0 and leaky["idle_min_s"] >= 0
    assert facts["by_state"]["idle in transaction"] >= 1
    assert {"user": "app", "superuser": False, "sessions": 6} in facts["by_user"]

    assert facts["blocked_queries"] == 2
    assert {entry["application_name"] for entry in facts["blocked"]} == {"waiter"}
    assert all(entry["blocked_by"] == [holder.info.backend_pid] for entry in facts["blocked"])
    [blocker] = facts["blockers"]
    assert blocker["pid"] == holder.info.backend_pid and blocker["blocks"] == 2
    assert blocker["state"] == "idle in transaction" and blocker["root"] is True and blocker["protected"] is None
    assert holder.info.backend_pid in {entry["pid"] for entry in facts["long_running"]}
    assert facts["locks"]["waiting"] >= 2 and facts["locks"]["by_mode"]["AccessExclusiveLock"] >= 1
    assert "shop" in {database["name"] for database in facts["databases"]}
    holder.rollback()
    for thread in threads:
        thread.join(timeout=5)


def test_kill_never_touches_superuser_replication_or_opsgraph_sessions(stack: Stack, open_session: Open) -> None:
    leaks = [open_session("app", "leaky") for _ in range(3)]
    superuser = open_session("postgres", "leaky")
    walsender = open_session("repl", "leaky", replication="database")
    assert walsender.execute("IDENTIFY_SYSTEM").fetchone() is not None  # a working replication connection
    opsgraph_named = open_session("app", "opsgraph-agent")

    facts = tool_output(run(stack, "postgres_info"))
    assert facts["backend_types"]["walsender"] == 1

    # Everything idle named leaky, whoever holds it: only the three ordinary sessions go.
    killed = tool_output(run(stack, "postgres_kill_long_queries", state="idle", application_name="leaky"))
    assert sorted(s["pid"] for s in killed["sessions"]) == sorted(c.info.backend_pid for c in leaks)
    assert killed["terminated"] == 3 and killed["not_terminated"] == []
    assert killed["spared"] == {"superuser": 1, "not_a_client_backend": 1}
    assert not any(session_alive(conn) for conn in leaks)

    # The broadest filters: every idle session, every session of any role with no duration.
    broad = tool_output(run(stack, "postgres_kill_long_queries", min_duration_s=0, max_sessions=500))
    assert broad["terminated"] == 0, broad["sessions"]
    assert broad["spared"]["opsgraph"] == 1 and broad["spared"]["superuser"] >= 1
    assert broad["spared"]["own_session"] == 1
    assert session_alive(superuser) and session_alive(walsender) and session_alive(opsgraph_named)

    # The terminating statement re-checks on its own, even when handed protected pids directly.
    protected = [superuser, walsender, opsgraph_named]
    with connect(stack, "postgres") as admin:
        rows = admin.execute(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = ANY(%s) OR pid = pg_backend_pid()",
            ([conn.info.backend_pid for conn in protected],),
        ).fetchall()
        params = {
            "wait_ms": 1000,
            "pids": [r[0] for r in rows],
            "starts": [r[1] for r in rows],
            "own_prefix": "opsgraph",
        }
        assert len(rows) == 4 and admin.execute(postgres_tools.TERMINATE_SQL, params).fetchall() == []
    assert all(session_alive(conn) for conn in protected)


def test_a_role_that_cannot_see_sessions_terminates_none_of_them(stack: Stack, open_session: Open) -> None:
    leaks = [open_session("app", "leaky") for _ in range(2)]
    connection = {**stack.inventory.get("db").connection.model_dump(), "user": "watcher"}
    as_watcher = parse_inventory({"resources": [{"name": "db", "kind": "postgres", "connection": connection}]})
    outcome = run_tool(
        "postgres_kill_long_queries",
        {"resource": "db", "application_name": "leaky"},
        ToolContext(as_watcher, stack.state_dir),
        10,
    )
    result = tool_output(outcome)
    assert result["terminated"] == 0 and result["spared"] == {"hidden": 2}
    assert all(session_alive(conn) for conn in leaks)


def test_kill_filters_and_bounds(stack: Stack, open_session: Open) -> None:
    old = [open_session("app", "batch") for _ in range(2)]
    time.sleep(1.2)
    fresh = open_session("app", "batch")
    bounded = tool_output(
        run(stack, "postgres_kill_long_queries", state="idle", min_duration_s=1, user="app", max_sessions=1)
    )
    assert bounded["terminated"] == 1 and bounded["over_limit"] == 1
    assert bounded["sessions"][0]["pid"] in {conn.info.backend_pid for conn in old}
    rest = tool_output(
        run(stack, "postgres_kill_long_queries", state="idle", min_duration_s=1, application_name="batch")
    )
    assert rest["terminated"] == 1
    assert not any(session_alive(conn) for conn in old)
    assert session_alive(fresh)  # idle for less than the minimum

    other_db = open_session("app", "batch", dbname="postgres")
    sleeper = open_session("app", "batch")
    sleeper_pid = sleeper.info.backend_pid  # a closed connection forgets it
    sleeping = threading.Thread(target=lambda: _ignore_kill(sleeper, "SELECT pg_sleep(30)"), daemon=True)
    sleeping.start()
    wait_for(lambda: any(s["state"] == "active" for s in _batch(stack)), "the sleeping query")

    preview = tool_output(run(stack, "postgres_kill_long_queries", application_name="batch", dry_run=True))
    assert preview["would_terminate"] == 3 and preview["terminated"] == 0
    assert all(session_alive(conn) for conn in [fresh, other_db])

    active = tool_output(run(stack, "postgres_kill_long_queries", state="active", application_name="batch"))
    assert [s["pid"] for s in active["sessions"]] == [sleeper_pid]
    sleeping.join(timeout=5)
    assert not sleeping.is_alive()

    elsewhere = tool_output(run(stack, "postgres_kill_long_queries", database="postgres", application_name="batch"))
    assert [s["pid"] for s in elsewhere["sessions"]] == [other_db.info.backend_pid]
    assert session_alive(fresh)


def test_kill_blockers_only_frees_the_waiters(stack: Stack, open_session: Open) -> None:
    holder, threads = block_on_items(stack, open_session, waiters=3)
    result = tool_output(run(stack, "postgres_kill_long_queries", blockers_only=True))
    assert [s["pid"] for s in result["sessions"]] == [holder.info.backend_pid]
    assert result["sessions"][0]["state"] == "idle in transaction"
    for thread in threads:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert tool_output(run(stack, "postgres_info"))["blocked_queries"] == 0


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"state": "sleeping"}, "state"),
        ({"user": "app'; DROP TABLE items; --"}, "user"),
        ({"application_name": "x" * 64}, "application_name"),
        ({"max_sessions": 10_000, "state": "idle"}, "max_sessions"),
        ({"min_duration_s": -1}, "min_duration_s"),
        ({}, "at least one filter"),
        ({"state": "idle", "sql": "SELECT 1"}, "sql"),
    ],
)
def test_kill_arguments_are_validated(stack: Stack, args: dict[str, Any], problem: str) -> None:
    outcome = run(stack, "postgres_kill_long_queries", **args)
    assert not outcome.ok and "invalid arguments" in str(outcome.error) and problem in str(outcome.error)


def test_vacuum_a_table_and_the_database(stack: Stack, open_session: Open) -> None:
    with connect(stack, "app") as writer:
        writer.execute("INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
        writer.execute("DELETE FROM items WHERE id > 100")
        writer.execute("SELECT pg_stat_force_next_flush()")
    with connect(stack, "postgres") as admin:
        dead = "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'items'"
        wait_for(lambda: admin.execute(dead).fetchone() == (1900,), "the deletes to reach the statistics", 10)
    one = tool_output(run(stack, "postgres_vacuum", table="public.items"))
    assert one["vacuumed"] == "public.items"
    assert one["dead_tuples_before"] == 1900 and one["dead_tuples_after"] < 1900
    everything = tool_output(run(stack, "postgres_vacuum"))
    assert everything["vacuumed"] == "database shop"
    assert "no table" in str(run(stack, "postgres_vacuum", table="missing").error)
    injected = run(stack, "postgres_vacuum", table="items; DROP TABLE items")
    assert not injected.ok and "invalid arguments" in str(injected.error)
    assert tool_output(run(stack, "postgres_vacuum", table="ITEMS"))["vacuumed"] == "public.items"  # folded like SQL


def test_scale_connections_is_bounded_and_refuses_to_go_below_usage(stack: Stack, open_session: Open) -> None:
    for _ in range(6):
        open_session("app", "crowd")
    used = int(probe(stack.inventory.get("db")).metrics["connections"] or 0)
    below = run(stack, "postgres_scale_connections", max_connections=max(10, used - 1))
    assert not below.ok and "not above" in str(below.error)
    step = PlanStep(
        tool="postgres_scale_connections",
        args={"resource": "db", "max_connections": 5000},
        rationale="",
        expected_effect="",
    )
    reviewed = review_step(0, step, stack.inventory, {"db"}, ApprovalMode.NONE)
    assert reviewed.verdict is StepVerdict.REFUSE and "ceiling" in reviewed.reason


def test_scale_connections_then_undo_then_restart(stack: Stack) -> None:
    before = probe(stack.inventory.get("db"))
    scaled = tool_output(run(stack, "postgres_scale_connections", max_connections=60))
    assert scaled["previous_max_connections"] == MAX_CONNECTIONS and scaled["max_connections"] == 60
    assert probe(stack.inventory.get("db")).metrics["max_connections"] == 60
    undone = tool_output(run(stack, "postgres_scale_connections", max_connections=scaled["previous_max_connections"]))
    assert undone["max_connections"] == MAX_CONNECTIONS

    pid = next(status.pid for status in stack.local.status() if status.name == "db")
    restarted = tool_output(run(stack, "postgres_restart"))
    assert restarted["running"] is True and restarted["pid"] != pid
    after = probe(stack.inventory.get("db"))
    assert after.health is before.health and after.metrics["max_connections"] == MAX_CONNECTIONS


def _batch(stack: Stack) -> list[dict[str, Any]]:
    facts = tool_output(run(stack, "postgres_info", long_query_s=0))
    return [s for s in facts["long_running"] if s["application_name"] == "batch"]


def _ignore_kill(conn: psycopg.Connection[Any], query: str) -> None:
    """Run a query that the test terminates: the error is the expected end."""
    try:
        conn.execute(query)
    except psycopg.OperationalError:
        return


def test_query_text_never_carries_a_password(stack: Stack, open_session: Open) -> None:
    open_session("app", "secretive").execute("ALTER ROLE app PASSWORD 'hunter2'")  # trust auth: no effect
    preview = tool_output(run(stack, "postgres_kill_long_queries", application_name="secretive", dry_run=True))
    [session] = preview["sessions"]
    assert "hunter2" not in str(session["query"]) and f"'{MASK}'" in str(session["query"])
