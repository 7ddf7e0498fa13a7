"""The operator chat in a real browser: Chromium (Playwright) against `opsgraph chat` on a real Redis.

Each test runs the documented command (`opsgraph chat --no-up`) on a free port over a local
stack it owns, injects real memory pressure, and works the chat as an operator would: type,
read, click. The ledger is the witness of what ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from support import Stack, free_port, redis_resource, running_stack, wait_for, watching

from opsgraph.graph.ledger import Ledger
from opsgraph.graph.runtime import incident_graph, start_incident
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "chat"
WAIT_MS = 90_000  # a whole incident graph on a loaded 2-core machine
expect.set_options(timeout=WAIT_MS)  # the assertions' own default is 5 s, whatever the page's is


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make setup installs it)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield browser
    browser.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:
        yield running


@contextmanager
def chat_server(stack: Stack, **env: str) -> Iterator[str]:
    """`opsgraph chat --no-up` on a free port; yields its URL once it answers; its log on failure."""
    port = free_port()
    command = [sys.executable, "-m", "opsgraph", "chat", "--no-up", "--port", str(port)]
    command += ["--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir)]
    log_path = stack.state_dir.parent / f"chat-{port}.log"
    environment = {**os.environ, "OPSGRAPH_RESOURCE_ACTION_CAP": "1000", **env}
    with log_path.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"the chat server exited ({server.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_for(answers, f"the chat server on {url}", timeout_s=60)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        # Shown by pytest only when the test failed: what the chat (and a watcher) said meanwhile.
        for log_file in sorted(stack.state_dir.parent.glob("*.log")):
            print(f"---- {log_file.name}\n{log_file.read_text()[-4000:]}")


def open_chat(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    expect(page.get_by_text("Health now").first).to_be_visible()
    return page


def say(page: Page, text: str) -> None:
    page.locator("#chat-input").fill(text)
    page.keyboard.press("Enter")


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


def maxmemory_mb(stack: Stack) -> int:
    value = redis_client(stack.inventory.get("cache")).config_get("maxmemory")["maxmemory"]
    return int(str(value)) // 2**20


def test_fix_the_cache_then_approve_shows_the_verified_resolution(stack: Stack, browser: Browser) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack) as url:
        page = open_chat(browser, url)
        say(page, "fix the cache")
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


def test_reject_runs_nothing(stack: Stack, browser: Browser) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack) as url:
        page = open_chat(browser, url)
        say(page, "fix the cache")
        page.get_by_role("button", name="Reject").click()
        expect(page.get_by_text(": rejected")).to_be_visible()
    assert results(stack) == []
    assert maxmemory_mb(stack) == 32
    ledger = Ledger(stack.state_dir / "ledger.sqlite")
    assert [row["status"] for row in ledger.incidents()] == ["rejected"]


def test_a_typed_change_is_planned_again_and_the_revised_arguments_run(stack: Stack, browser: Browser) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with chat_server(stack) as url:
        page = open_chat(browser, url)
        say(page, "fix the cache")
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        say(page, "why do you want to do that?")
        expect(page.get_by_text("still waiting for your answer")).to_be_visible()
        say(page, "only 128 MB")
        expect(page.get_by_text('"maxmemory_mb": 128').last).to_be_visible()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text(": resolved")).to_be_visible()
    assert [(a["args"]["maxmemory_mb"], a["status"]) for a in scaled(stack)] == [(128, "ok")]
    assert maxmemory_mb(stack) == 128


def test_an_incident_opened_by_watch_is_approved_in_the_chat(stack: Stack, browser: Browser) -> None:
    with chat_server(stack) as url:
        page = open_chat(browser, url)
        with watching(stack, "risky"):
            fill_redis_memory(stack.inventory.get("cache"))
            expect(page.get_by_text("New incident")).to_be_visible()
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_text(": resolved")).to_be_visible()
    assert [a["status"] for a in scaled(stack)] == ["ok"]


def test_a_pending_approval_survives_a_chat_server_restart(stack: Stack, browser: Browser) -> None:
    fill_redis_memory(stack.inventory.get("cache"))
    with incident_graph(stack.state_dir) as graph:
        paused = start_incident(graph, stack.context(), "cache", "inc-restart-cache")
    assert paused.pending is not None
    with chat_server(stack) as url:
        page = open_chat(browser, url)
        expect(page.get_by_text("Approval needed: inc-restart-cache")).to_be_visible()
    with chat_server(stack) as url:  # a new server process: nothing of the first one's memory
        page = open_chat(browser, url)
        expect(page.get_by_text("Approval needed: inc-restart-cache")).to_be_visible()
        page.get_by_role("button", name="Approve").click()
        expect(page.get_by_text(": resolved")).to_be_visible()
    record = Ledger(stack.state_dir / "ledger.sqlite").incident("inc-restart-cache")
    assert record is not None and record["status"] == "resolved"
