"""A planted password never leaves OpsGraph: not in `fix --json`, `incidents show`, MCP results, logs or state files.

The password is the superuser password of a real PostgreSQL started outside OpsGraph
(scram auth), named by the inventory's `password_env`, and it is also planted in the
query text of the session that blocks the others (`SELECT '<password>'` in an open
transaction holding a lock), where no credential pattern could spot it: only the
literal-value redaction can. The server logs every statement (`log_statement = all`),
so its log, which `process_logs` reads, holds it too. Every test also checks that the
place it greps really carried the text (a mask where the password was), so a test
cannot pass by looking at an empty output.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from outside_postgres import OutsidePostgres, outside_postgres
from support import tool_output, wait_for

from opsgraph.mcp_server import build_server
from opsgraph.tools.inventory import load_inventory
from opsgraph.tools.postgres_tools.activity import QUERY_TEXT_CHARS
from opsgraph.tools.redaction import MASK
from opsgraph.tools.runner import run_tool
from opsgraph.tools.spec import ToolContext

pytestmark = pytest.mark.timeout(180)

PLANTED = "hunter2-planted-Zq9x"
PASSWORD_ENV = "OPSGRAPH_TEST_PLANTED_PASSWORD"
APP_PASSWORD = "app-role-pw-77"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsidePostgres]:
    folder = tmp_path_factory.mktemp("leak")
    with outside_postgres(folder / "pg", {"log_statement": "'all'"}, password=PLANTED) as running:
        with running.connect() as admin:
            admin.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
            admin.execute("CREATE TABLE items (id int PRIMARY KEY)")
            admin.execute("GRANT ALL ON items TO app")
        yield running


@pytest.fixture
def planted_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The password where the inventory says it is; the same environment for the CLI's subprocesses."""
    monkeypatch.setenv(PASSWORD_ENV, PLANTED)
    return {**os.environ, PASSWORD_ENV: PLANTED}


Block = Callable[[str], psycopg.Connection[Any]]


@pytest.fixture
def block(server: OutsidePostgres) -> Iterator[Block]:
    """Open an ordinary role's transaction holding a lock, its last query carrying the password, and one
    waiter queued behind it; the holder is named as the test says. Everything is closed afterwards."""
    opened: list[tuple[psycopg.Connection[Any], psycopg.Connection[Any], threading.Thread]] = []

    def open_blocker(application_name: str) -> psycopg.Connection[Any]:
        holder = server.connect(user="app", password=APP_PASSWORD, autocommit=False, application_name=application_name)
        holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        holder.execute(f"SELECT '{PLANTED}' AS planted")
        waiter = server.connect(application_name="waiter")
        thread = threading.Thread(target=lambda: _wait_quietly(waiter), daemon=True)
        thread.start()
        opened.append((holder, waiter, thread))
        wait_for(lambda: _blocked(server) >= 1, "the waiter to queue behind the holder")
        return holder

    yield open_blocker
    for holder, waiter, thread in opened:
        holder.close()
        thread.join(timeout=30)
        waiter.close()


def _wait_quietly(conn: psycopg.Connection[Any]) -> None:
    """The waiter's query; the holder being terminated (the fix) lets it finish."""
    conn.execute("SELECT count(*) FROM items")


def _blocked(server: OutsidePostgres) -> int:
    with server.connect() as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0")
        found = row.fetchone()
    return int(found[0]) if found else 0


def write_inventory(folder: Path, server: OutsidePostgres) -> Path:
    db = {
        "name": "db",
        "kind": "postgres",
        "environment": "external",
        "connection": {
            "host": "127.0.0.1", "port": server.port, "user": "postgres", "database": "postgres",
            "password_env": PASSWORD_ENV,
        },
        "external": {"paths": {"log_files": [str(server.log_file)], "data_dir": str(server.data_dir)}},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "opsgraph.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "resources": [db]}))
    return path


def opsgraph(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsgraph", *args], capture_output=True, text=True, timeout=150, env=env, check=False
    )


def assert_no_planted_bytes(state_dir: Path) -> None:
    """A byte grep of every file OpsGraph left in its state folder (SQLite files, their -wal, anything else)."""
    files = [path for path in state_dir.rglob("*") if path.is_file()]
    assert any(path.name == "ledger.sqlite" for path in files), files
    leaking = [str(path) for path in files if PLANTED.encode() in path.read_bytes()]
    assert not leaking, f"the planted password is stored in {leaking}"


def test_mcp_postgres_info_and_process_logs_return_no_password(
    server: OutsidePostgres, planted_env: dict[str, str], block: Block, tmp_path: Path
) -> None:
    block("holder")
    inventory = load_inventory(write_inventory(tmp_path, server))
    mcp = build_server(ToolContext(inventory, tmp_path / "state"))

    async def call(name: str, arguments: dict[str, Any]) -> str:
        result = await mcp.call_tool(name, arguments)
        return json.dumps(result, default=str)

    info = asyncio.run(call("postgres_info", {"resource": "db"}))
    logs = asyncio.run(call("process_logs", {"resource": "db", "lines": 200}))
    assert PLANTED not in info and PLANTED not in logs
    assert "AS planted" in info and MASK in info  # the holder's query is there, masked
    assert "AS planted" in logs and MASK in logs  # so is the logged statement
    assert APP_PASSWORD not in logs  # CREATE ROLE … PASSWORD '…' in the log: the SQL literal is masked


def test_a_password_cut_by_the_query_text_limit_is_masked_whole(
    server: OutsidePostgres, planted_env: dict[str, str], tmp_path: Path
) -> None:
    inventory = load_inventory(write_inventory(tmp_path, server))
    padding = "x" * (QUERY_TEXT_CHARS - len("SELECT '', '") - len(PLANTED) // 2)  # the cut falls mid-password
    with server.connect(user="app", password=APP_PASSWORD, application_name="cut") as session:
        session.execute(f"SELECT '{padding}', '{PLANTED}'")
        args = {"resource": "db", "application_name": "cut", "dry_run": True}
        outcome = run_tool("postgres_kill_long_queries", args, ToolContext(inventory, tmp_path / "state"), 30)
    [listed] = tool_output(outcome)["sessions"]
    assert str(listed["query"]).startswith(f"SELECT '{padding}', '")
    assert PLANTED[: len(PLANTED) // 2] not in str(listed["query"])  # not even the half that fits


def test_fix_json_and_incidents_show_never_print_it_nor_store_it(
    server: OutsidePostgres, planted_env: dict[str, str], block: Block, tmp_path: Path
) -> None:
    block("holder")
    inventory, state_dir = write_inventory(tmp_path, server), tmp_path / "state"
    fix = opsgraph(
        planted_env, "fix", "--json", "--inventory", str(inventory), "--state-dir", str(state_dir), "--approval", "none"
    )
    assert fix.returncode == 0, fix.stderr
    assert PLANTED not in fix.stdout and PLANTED not in fix.stderr
    [record] = [json.loads(line) for line in fix.stdout.splitlines() if line.strip()]
    assert record["resource"] == "db" and MASK in fix.stdout  # the blocker's query made it into the report, masked

    shown = opsgraph(planted_env, "incidents", "show", record["incident_id"], "--state-dir", str(state_dir))
    assert shown.returncode == 0, shown.stderr
    assert PLANTED not in shown.stdout and PLANTED not in shown.stderr
    assert MASK in shown.stdout and '"actions"' in shown.stdout
    assert_no_planted_bytes(state_dir)


def test_watch_logs_never_carry_it(
    server: OutsidePostgres, planted_env: dict[str, str], block: Block, tmp_path: Path
) -> None:
    # The watcher logs what the runbook says about the blocker, which names it by its application_name:
    # text the client chooses, here carrying the password too.
    block(f"batch {PLANTED}")
    inventory, state_dir = write_inventory(tmp_path, server), tmp_path / "state"
    log_path = tmp_path / "watch.log"
    command = [
        sys.executable, "-m", "opsgraph", "watch", "--inventory", str(inventory), "--state-dir", str(state_dir),
        "--approval", "risky", "--interval", "0.2",
    ]  # fmt: skip
    with log_path.open("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=planted_env)
        try:
            # The plan to end the blocker waits for a human (approval risky): nothing is terminated.
            wait_for(lambda: "awaiting_approval" in log_path.read_text(), "the plan to wait for an approval")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log_path.read_text()
    assert PLANTED not in text
    assert f"'batch {MASK}'" in text  # the diagnosis and the plan were logged, naming the blocker masked
    assert_no_planted_bytes(state_dir)
