"""`opsgraph mcp --transport http` as a real server: the bearer token, loopback-only binds, DNS-rebinding protection.

Each test starts the CLI as a subprocess on a free port and talks to it over HTTP, with
httpx for what a hostile local process would send and with the MCP client SDK for what a
legitimate client does.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Implementation, Tool
from pydantic import SecretStr
from support import Stack, free_port, redis_resource, running_stack, wait_for

from opsgraph.mcp_server import Access, http_refusal
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.connections import redis_client
from opsgraph.tools.loopback import is_loopback
from opsgraph.tools.probes import probe

TOKEN = "test-token-0123456789-not-a-real-secret"
# What a client sends first; any well-formed request will do for the header checks.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
STREAMABLE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("mcp-http"), [redis_resource(max_memory_mb=128)]) as running:
        yield running


def command(stack: Stack, *extra: str) -> list[str]:
    return [sys.executable, "-m", "opsgraph", "mcp", "--transport", "http", "--inventory", str(stack.inventory_path),
            "--state-dir", str(stack.state_dir), *extra]  # fmt: skip


def environment(token: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "OPSGRAPH_MCP_TOKEN"}
    return env | ({"OPSGRAPH_MCP_TOKEN": token} if token is not None else {})


def refusal(stack: Stack, *extra: str, token: str | None = None) -> str:
    """The one error line of a server that must not start (a server that starts hangs: the timeout fails the test)."""
    result = subprocess.run(
        command(stack, "--port", str(free_port()), *extra),
        env=environment(token), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def http_server(stack: Stack, *extra: str, host: str = "127.0.0.1", token: str | None = None) -> Iterator[str]:
    """A running `opsgraph mcp --transport http`; yields its URL, and its log ends up in `<state>/../mcp-<port>.log`."""
    port = free_port()
    log_path = stack.state_dir.parent / f"mcp-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command(stack, "--host", host, "--port", str(port), *extra),
            env=environment(token), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: server.poll() is not None or listening(host, port), "the MCP server to listen", 60)
            assert server.poll() is None, log_path.read_text()
            yield f"http://{host}:{port}/mcp"
        finally:
            server.terminate()
            server.wait(10)


def initialize(url: str, **headers: str) -> httpx.Response:
    """A bare initialize request with these extra headers, as any local process could send it."""
    return httpx.post(url, json=INITIALIZE, headers=STREAMABLE | headers, timeout=10)


def log_of(url: str, stack: Stack) -> str:
    return (stack.state_dir.parent / f"mcp-{httpx.URL(url).port}.log").read_text()


def test_mutating_access_without_a_token_refuses_to_start(stack: Stack) -> None:
    for access in ("safe", "all"):
        line = refusal(stack, "--access", access)
        assert f"--access {access}" in line and "OPSGRAPH_MCP_TOKEN" in line and "Authorization: Bearer" in line


def test_a_non_loopback_bind_needs_allow_remote_and_a_token(stack: Stack) -> None:
    # 192.0.2.1 (TEST-NET-1) is never this machine's: a server that did not refuse would fail to bind instead.
    assert "--allow-remote" in refusal(stack, "--host", "192.0.2.1", token=TOKEN)
    assert "OPSGRAPH_MCP_TOKEN" in refusal(stack, "--host", "192.0.2.1", "--allow-remote")
    assert "every interface" in refusal(stack, "--host", "0.0.0.0", "--allow-remote", token=TOKEN)
    assert "shorter than 16" in refusal(stack, "--access", "all", token="short")


def test_missing_or_wrong_token_gets_401_and_the_right_one_is_the_recorded_caller(stack: Stack) -> None:
    maxmemory_mb = int(probe(stack.inventory.get("cache")).metrics["maxmemory_mb"] or 0)
    with http_server(stack, "--access", "all", token=TOKEN) as url:
        for authorization in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {TOKEN}x"},
                              {"Authorization": TOKEN}):  # fmt: skip
            response = initialize(url, **authorization)
            assert response.status_code == 401, (authorization, response.text)

        async def talk() -> tuple[list[Tool], CallToolResult]:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with (
                httpx.AsyncClient(headers=headers, timeout=30) as client,
                streamable_http_client(url, http_client=client) as (read, write, _),
                ClientSession(read, write, client_info=Implementation(name="ops-bot", version="1")) as session,
            ):
                await session.initialize()
                tools = (await session.list_tools()).tools
                arguments = {"resource": "cache", "maxmemory_mb": maxmemory_mb + 16}
                return tools, await session.call_tool("redis_scale_memory", arguments)

        tools, raised = asyncio.run(talk())
        assert TOKEN not in log_of(url, stack)
    assert len(tools) == len(CATALOGUE) >= 20
    assert not raised.isError, raised.content
    rows = stack.context().ledger.actions("mcp+token:ops-bot")
    assert [(row["phase"], row["tool"], row["status"]) for row in rows] == [
        ("intent", "redis_scale_memory", None),
        ("result", "redis_scale_memory", "ok"),
    ]
    assert stack.context().ledger.actions("mcp:ops-bot") == []  # an authenticated call is never filed as anonymous
    with redis_client(stack.inventory.get("cache")) as client:
        client.config_set("maxmemory", f"{maxmemory_mb}mb")


def test_a_foreign_host_header_is_rejected_on_any_loopback_address(stack: Stack) -> None:
    """127.0.0.2 is loopback too, but not one of the three addresses the SDK protects by itself."""
    with http_server(stack, host="127.0.0.2") as url:
        evil = initialize(url, Host="evil.example.com")
        assert evil.status_code == 421, evil.text
        other_port = initialize(url, Host="127.0.0.2:1")
        assert other_port.status_code == 421, other_port.text
        origin = initialize(url, Origin="http://evil.example.com")
        assert origin.status_code == 403, origin.text
        own = initialize(url)  # Host: 127.0.0.2:<port>
        assert own.status_code == 200, own.text


def test_with_a_token_even_read_access_needs_it(stack: Stack) -> None:
    with http_server(stack, token=TOKEN) as url:
        assert initialize(url).status_code == 401
        assert initialize(url, Authorization=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("192.0.2.1", False), ("example.com", False), ("::", False)],
)  # fmt: skip
def test_loopback_is_decided_by_the_address(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_read_access_on_loopback_needs_no_token() -> None:
    assert http_refusal("127.0.0.2", Access.READ, None, allow_remote=False) is None
    assert http_refusal("192.0.2.1", Access.ALL, SecretStr(TOKEN), allow_remote=True) is None
