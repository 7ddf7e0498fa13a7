"""`langgraph dev` serves the project's langgraph.json offline; an incident runs through the SDK.

The server is a real subprocess on a free port. It reads our `langgraph.json` as is
(`--config`), but runs in a private working directory so that its in-memory
persistence (`.langgraph_api/`, which it reloads on the next start) never lands in
the repository. The graph path in langgraph.json (`./opsgraph/...`) is resolved
against the working directory, so that directory holds a symlink to our package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient
from support import Stack, free_port, redis_resource, running_stack

from opsgraph.tools.faults import fill_redis_memory
from opsgraph.tools.probes import probe
from opsgraph.tools.snapshot import Health

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "langgraph.json"
GRAPH_ID = "opsgraph"  # the key under "graphs" in langgraph.json
STARTUP_DEADLINE_S = 60.0
# Per-run context (the server builds our Context dataclass from this JSON); the
# inventory, state folder and approval mode come from the server's environment.
FAST = {"verify_deadline_s": 10.0, "settle_s": 0.5, "probe_interval_s": 0.1}

# Keep the server offline and quiet: no LangSmith tracing (and no LangSmith origin
# lookup at start), no CLI analytics POST, no PyPI version check, no tunnel/browser.
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "PYTHONUNBUFFERED": "1",
}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    stack: Stack

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-8000:]


def _wait_until_ok(server: Server, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"langgraph dev exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/ok", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"langgraph dev did not answer /ok within {deadline_s:.0f} s:\n{server.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), [redis_resource()]) as running:
        yield running


@pytest.fixture(scope="module")
def server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("langgraph-dev")
    (workdir / "opsgraph").symlink_to(ROOT / "opsgraph", target_is_directory=True)
    port = free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "OPSGRAPH_INVENTORY": str(stack.inventory_path),
        "OPSGRAPH_HOME": str(stack.state_dir),
        "OPSGRAPH_APPROVAL": "risky",
    }
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(CONFIG),
    ]
    log = workdir / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    running = Server(f"http://127.0.0.1:{port}", process, log, stack)
    try:
        _wait_until_ok(running, STARTUP_DEADLINE_S)
        yield running
    finally:
        _stop(process)


@pytest.fixture
def client(server: Server) -> Iterator[SyncLangGraphClient]:
    with get_sync_client(url=server.url, api_key=None, timeout=60.0) as sdk:
        yield sdk


def test_server_answers_ok_and_serves_our_graph(server: Server, client: SyncLangGraphClient) -> None:
    assert httpx.get(f"{server.url}/ok", timeout=5.0).json() == {"ok": True}
    assistants = client.assistants.search()
    assert [a["graph_id"] for a in assistants] == [GRAPH_ID]
    schemas = client.assistants.get_schemas(assistants[0]["assistant_id"])
    assert schemas["graph_id"] == GRAPH_ID
    context_schema = schemas["context_schema"]  # our Context dataclass, as JSON schema
    assert context_schema is not None and context_schema["title"] == "Context"
    assert {"inventory_path", "state_dir", "approval", "verify_deadline_s"} <= context_schema["properties"].keys()
    nodes = {node["id"] for node in client.assistants.get_graph(assistants[0]["assistant_id"])["nodes"]}
    assert {"approval", "executor", "report"} <= nodes


def test_server_renders_the_input_schema(client: SyncLangGraphClient) -> None:
    [assistant] = client.assistants.search(graph_id=GRAPH_ID)
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    input_schema = schemas["input_schema"]
    assert input_schema is not None, "the server could not build the graph's input schema (see its log)"
    assert {"resource", "incident_id"} <= input_schema["properties"].keys()


def test_incident_pauses_for_approval_and_resumes_to_resolution(server: Server, client: SyncLangGraphClient) -> None:
    cache = server.stack.inventory.get("cache")
    fill_redis_memory(cache)
    assert probe(cache).health is Health.FAILED

    incident_id = str(uuid.uuid4())  # the server wants UUID thread ids; thread id == incident id
    client.threads.create(thread_id=incident_id)
    paused: Any = client.runs.wait(
        incident_id, GRAPH_ID, input={"resource": "cache", "incident_id": incident_id}, context=FAST
    )

    thread = client.threads.get(incident_id)
    assert thread["status"] == "interrupted", paused
    state = client.threads.get_state(incident_id)
    assert state["next"] == ["approval"]
    [pending] = state["interrupts"]
    request: dict[str, Any] = pending["value"]
    assert request["type"] == "approval"
    assert request["incident_id"] == incident_id
    assert [s["tool"] for s in request["steps"]] == ["redis_scale_memory"]
    assert request["steps"][0]["risk"] == "disruptive"
    assert probe(cache).health is Health.FAILED  # nothing ran before the approval

    answer = {"decision": "approve", "by": "alice", "digests": [request["steps"][0]["digest"]]}
    done: Any = client.runs.wait(incident_id, GRAPH_ID, command={"resume": answer}, context=FAST)

    assert client.threads.get(incident_id)["status"] == "idle"
    report = done["report"]
    assert done["outcome"] == "resolved", done.get("outcome_detail")
    assert report["resolved"] is True
    assert report["actions"][0]["tool"] == "redis_scale_memory"
    assert report["actions"][0]["status"] == "ok"
    assert report["approvals"][0]["by"] == "alice"
    assert report["metrics_after"]["memory_used_pct"] < 85
    assert probe(cache).health is Health.HEALTHY
    row = server.stack.context().ledger.incident(incident_id)
    assert row is not None and row["status"] == "resolved"


def test_an_incident_paused_on_the_server_is_approved_with_the_cli(server: Server, client: SyncLangGraphClient) -> None:
    """One approval flow for every entry point: Studio pauses it, `opsgraph approve --server` answers it.

    Started as Studio starts it, with no `incident_id`: the thread's id becomes the incident's.
    """
    cache = server.stack.inventory.get("cache")
    fill_redis_memory(cache)
    incident_id = str(uuid.uuid4())
    client.threads.create(thread_id=incident_id)
    client.runs.wait(incident_id, GRAPH_ID, input={"resource": "cache"}, context=FAST)
    assert client.threads.get(incident_id)["status"] == "interrupted"
    ledger = server.stack.context().ledger
    assert ledger.ids_with_status("awaiting_approval") == [incident_id]

    def approve(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "opsgraph",
            "approve",
            incident_id,
            "--by",
            "bob",
            "--inventory",
            str(server.stack.inventory_path),
            "--state-dir",
            str(server.stack.state_dir),
            *extra,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)  # fmt: skip

    here_only = approve()
    assert here_only.returncode == 1 and "pass --server URL" in here_only.stderr
    approved = approve("--server", server.url)
    assert approved.returncode == 0, approved.stderr
    assert "RESOLVED" in approved.stdout
    assert client.threads.get(incident_id)["status"] == "idle"
    results = [row for row in ledger.actions(incident_id) if row["phase"] == "result"]
    assert [(row["tool"], row["status"]) for row in results] == [("redis_scale_memory", "ok")]  # executed once
    [decided] = ledger.approvals(incident_id)
    assert decided["decided_by"] == "bob" and decided["decision"] == "approve"
    closed = ledger.incident(incident_id)
    assert closed is not None and closed["status"] == "resolved"  # the ledger agrees with the checkpoint
    again = approve("--server", server.url)
    assert again.returncode == 1 and "is not waiting for an approval" in again.stderr
    assert probe(cache).health is Health.HEALTHY


def test_an_incident_paused_on_the_server_is_found_and_approved_by_the_chat(
    server: Server, client: SyncLangGraphClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chat lists a plan Studio paused (via OPSGRAPH_LANGGRAPH_URL) and its answer resumes it there."""
    from opsgraph.chat.service import ChatService

    monkeypatch.setenv("OPSGRAPH_LANGGRAPH_URL", server.url)
    fill_redis_memory(server.stack.inventory.get("cache"))
    incident_id = str(uuid.uuid4())
    client.threads.create(thread_id=incident_id)
    client.runs.wait(incident_id, GRAPH_ID, input={"resource": "cache"}, context=FAST)
    chat = ChatService(server.stack.context())
    [pending] = [p for p in chat.pending() if p.incident_id == incident_id]
    assert pending.server == server.url and pending.request["steps"][0]["tool"] == "redis_scale_memory"
    result = chat.answer(pending, {"decision": "approve", "by": "alice", "digests": pending.digests})
    assert result.pending is None and result.values["outcome"] == "resolved"
    [decided] = chat.ledger.approvals(incident_id)
    assert (decided["decided_by"], decided["decision"]) == ("alice", "approve")
    assert chat.pending_for(incident_id) is None
