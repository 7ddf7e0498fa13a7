"""The operator chat in a real browser: Chromium (Playwright) against `opsgraph chat` on a real Redis.

Each test runs the documented command (`opsgraph chat --no-up`) on a free port over a local
stack it owns, injects real memory pressure, and works the chat as an operator would: type,
read, click. The ledger is the witness of what ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from playwright.sync_api import Page, expect
from support import Stack, redis_resource, running_stack, watching

from chat.chainlit_server import (
    CHAT_APP,
    auth_env,
    chainlit_server,
    connect_once,
    log_in,
    opsgraph_chat_command,
    run_async,
    send_message,
)
from opsgraph.graph.ledger import Ledger
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "chat"
WAIT_MS = 90_000  # a whole incident graph on a loaded 2-core machine
expect.set_options(timeout=WAIT_MS)  # the assertions' own default is 5 s, whatever the page's is
PASSWORDS = {"alice": "alice-pw-1", "carol": "carol-pw-3"}
ROLES = {"alice": "operator", "carol": "viewer"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        yield running


@pytest.fixture
def login() -> dict[str, str]:
    """Login on: alice is an operator, carol a viewer (one secret for every server of the test)."""
    return auth_env(PASSWORDS, ROLES)


@contextmanager
def chat_server(stack: Stack, env: dict[str, str]) -> Iterator[str]:
    """`opsgraph chat --no-up` on a free port over this stack; yields its URL once it answers."""
    folder = stack.state_dir.parent / "chat-server"
    settings = {"OPSGRAPH_RESOURCE_ACTION_CAP": "1000", **env}  # the suite's cap: its servers see only what we give
    command = opsgraph_chat_command(stack.inventory_path, stack.state_dir)
    with chainlit_server(CHAT_APP, folder, settings, command) as server:
        yield server.url


def open_chat(page: Page, url: str, user: str = "alice") -> Page:
    page.set_default_timeout(WAIT_MS)
    log_in(page, url, user, PASSWORDS[user])
    expect(page.get_by_text("Health now").first).to_be_visible()
    return page


def screenshot(page: Page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"))


def results(stack: Stack) -> list[dict[str, Any]]:
    """Every step that ran (result rows), from the ledger."""
    ledger = Ledger(stack.state_dir / "ledger.sqlite")
    rows = [a for row in ledger.incidents() for a in ledger.actions(row["incident_id"])]
    return [{**a, "args": json.loads(a["args"])} for a in rows if a["phase"] == "result"]


def scaled(stack: Stack) -> list[dict[str, Any]]:
    """The memory raises that ran (a plan may also hold a safe `redis_memory_purge`, which runs unasked)."""
    return [a for a in results(stack) if a["tool"] == "redis_scale_memory"]


def paused_by_another_process(stack: Stack, incident_id: str) -> None:
    """Memory pressure, and an incident on it that waits for its approval (as `opsgraph fix` leaves one)."""
    fill_redis_memory(stack.inventory.get("cache"))
    with incident_graph(stack.state_dir) as graph:
        assert start_incident(graph, stack.context(), "cache", incident_id).pending is not None


def maxmemory_mb(stack: Stack) -> int:
    value = redis_client(stack.inventory.get("cache")).config_get("maxmemory")["maxmemory"]
    return int(str(value)) // 2**20


def test_fix_the_cache_then_approve_shows_the_resolution(stack: Stack, page: Page, login: dict[str, str]) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack, login) as url:
        open_chat(page, url)
        send_message(page, "fix the cache")
        approve = page.get_by_role("button", name="Approve")
        expect(approve).to_be_visible()
        expect(page.get_by_text("redis_scale_memory").last).to_be_visible()
        expect(page.get_by_text("risk disruptive").last).to_be_visible()
        screenshot(page, "approval")
        approve.click()
        expect(page.get_by_text(": resolved")).to_be_visible()
        expect(page.get_by_text("data survived: True").last).to_be_visible()
        screenshot(page, "resolved")
    [ran] = scaled(stack)
    assert ran["status"] == "ok"
    assert maxmemory_mb(stack) == ran["args"]["maxmemory_mb"] > 32
    [incident] = Ledger(stack.state_dir / "ledger.sqlite").incidents()
    [decided] = Ledger(stack.state_dir / "ledger.sqlite").approvals(incident["incident_id"])
    assert (decided["decision"], decided["decided_by"]) == ("approve", "alice")  # the logged-in operator


def test_reject_runs_nothing(stack: Stack, page: Page, login: dict[str, str]) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack, login) as url:
        open_chat(page, url)
        send_message(page, "fix the cache")
        page.get_by_role("button", name="Reject").click()
        expect(page.get_by_text(": rejected")).to_be_visible()
    assert results(stack) == []
    assert maxmemory_mb(stack) == 32
    ledger = Ledger(stack.state_dir / "ledger.sqlite")
    assert [row["status"] for row in ledger.incidents()] == ["rejected"]


def test_a_typed_change_is_replanned_and_its_arguments_run(stack: Stack, page: Page, login: dict[str, str]) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack, login) as url:
        open_chat(page, url)
        send_message(page, "fix the cache")
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        send_message(page, "why do you want to do that?")
        expect(page.get_by_text("still waiting for your answer")).to_be_visible()
        send_message(page, "only 128 MB")
        expect(page.get_by_text('"maxmemory_mb": 128').last).to_be_visible()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text(": resolved")).to_be_visible()
    assert [(a["args"]["maxmemory_mb"], a["status"]) for a in scaled(stack)] == [(128, "ok")]
    assert maxmemory_mb(stack) == 128


def test_an_incident_opened_by_watch_is_approved_in_the_chat(stack: Stack, page: Page, login: dict[str, str]) -> None:
    with chat_server(stack, login) as url:
        open_chat(page, url)
        with watching(stack, "risky"):
            fill_redis_memory(stack.inventory.get("cache"))
            expect(page.get_by_text("New incident")).to_be_visible()
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text(": resolved")).to_be_visible()
    assert [a["status"] for a in scaled(stack)] == ["ok"]


def test_a_pending_approval_survives_a_chat_server_restart(stack: Stack, page: Page, login: dict[str, str]) -> None:
    paused_by_another_process(stack, "inc-restart-cache")
    with chat_server(stack, login) as url:
        open_chat(page, url)
        expect(page.get_by_text("Approval needed: inc-restart-cache")).to_be_visible()
        send_message(page, "what's wrong?")
        expect(page.get_by_text("Open incidents:").nth(1)).to_be_visible()  # answered: the conversation has a turn
    with chat_server(stack, login) as url:  # a new server process: nothing of the first one's memory
        page.goto(url)  # still logged in: the same secret signed the cookie
        expect(page.get_by_text("Approval needed: inc-restart-cache")).to_be_visible()
        screenshot(page, "after-restart")
        history = page.locator("#thread-history")
        expect(history.get_by_text("what's wrong?")).to_be_visible()  # the earlier conversation, from chat.sqlite
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text(": resolved")).to_be_visible()
    record = Ledger(stack.state_dir / "ledger.sqlite").incident("inc-restart-cache")
    assert record is not None and record["status"] == "resolved"


def test_no_login_sees_nothing_and_a_viewer_cannot_approve(stack: Stack, page: Page, login: dict[str, str]) -> None:
    paused_by_another_process(stack, "inc-viewer-cache")
    with chat_server(stack, login) as url:
        # Nobody logged in: the page is the login form, the API and the websocket refuse (tests/chat/test_auth.py
        # checks every endpoint against the same login; this is the real chat, with a plan waiting).
        page.goto(url)
        page.wait_for_url(f"{url}/login")
        expect(page.locator("#email")).to_be_visible()
        assert "inc-viewer-cache" not in page.content()
        action = {"id": "a", "forId": "m", "name": "approve", "payload": {"incident_id": "inc-viewer-cache"}}
        refused = httpx.post(f"{url}/project/action", json={"sessionId": "s", "action": action}, timeout=30)
        assert refused.status_code == 401
        with pytest.raises(socketio.exceptions.ConnectionError):
            run_async(connect_once(url, None))
        open_chat(page, url, "carol")
        expect(page.get_by_text("Approval needed: inc-viewer-cache")).to_be_visible()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("carol is viewer and may not approve").first).to_be_visible()
    ledger = Ledger(stack.state_dir / "ledger.sqlite")
    assert ledger.approvals("inc-viewer-cache") == [] and results(stack) == []
    record = ledger.incident("inc-viewer-cache")
    assert record is not None and record["status"] == "awaiting_approval"
    assert maxmemory_mb(stack) == 32


def test_with_a_model_the_agent_answers_and_its_fix_request_runs_the_graph(
    stack: Stack, page: Page, login: dict[str, str], tmp_path: Path
) -> None:
    """The conversational path, on the emulated model (`scripted:`): it reads, asks for a fix, and the
    graph — runbook reasoning, the policy, the approval — takes it from there."""
    script = tmp_path / "chat-model.json"
    script.write_text(
        json.dumps([
            {"tool_calls": [{"name": "inventory_health", "args": {}}]},
            {"tool_calls": [{"name": "start_fix", "args": {"resource": "cache", "reason": "memory is full"}}]},
            {"text": "The cache is out of memory; I asked OpsGraph to fix it. Review the plan below."},
        ])
    )  # fmt: skip
    fill_redis_memory(stack.inventory.get("cache"))
    model = {"OPSGRAPH_MODEL": f"scripted:{script}", "OPSGRAPH_REASONING": "runbook"}
    with chat_server(stack, {**login, **model}) as url:
        open_chat(page, url)
        send_message(page, "what is going on with the cache?")
        expect(page.get_by_text("I asked OpsGraph to fix it")).to_be_visible()
        expect(page.get_by_text("read by the assistant")).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        expect(page.get_by_text("Planned by runbook")).to_be_visible()
    assert results(stack) == []  # the agent only asked: nothing runs before the approval
