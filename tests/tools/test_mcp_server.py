"""The catalogue over MCP (stdio; HTTP in test_mcp_http.py): annotations, access levels, policy, and the adapters."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, Implementation, Tool
from support import Stack, redis_resource, running_stack

from opsgraph.agents.toolbox import load_tools
from opsgraph.graph.control import Controls
from opsgraph.graph.ledger import Ledger
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.connections import redis_client
from opsgraph.tools.probes import probe
from opsgraph.tools.risk import Risk


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("mcp"), [redis_resource(max_memory_mb=128)]) as running:
        yield running


def server_args(stack: Stack, *extra: str) -> list[str]:
    return ["-m", "opsgraph", "mcp", "--inventory", str(stack.inventory_path), "--state-dir", str(stack.state_dir),
            *extra]  # fmt: skip


async def _over_stdio(
    stack: Stack, access: str, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[Tool], list[CallToolResult]]:
    params = StdioServerParameters(command=sys.executable, args=server_args(stack, "--access", access))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def test_stdio_lists_every_tool_with_annotations(stack: Stack) -> None:
    tools, [info] = asyncio.run(_over_stdio(stack, "all", [("redis_info", {"resource": "cache"})]))
    by_name = {tool.name: tool for tool in tools}
    assert len(by_name) == len(CATALOGUE) >= 20
    for name, spec in CATALOGUE.items():
        annotations = by_name[name].annotations
        assert annotations is not None
        assert annotations.readOnlyHint is (spec.risk is Risk.READ), name
        assert annotations.destructiveHint is (spec.risk in (Risk.DISRUPTIVE, Risk.DESTRUCTIVE)), name
        assert set(by_name[name].inputSchema["properties"]) == set(spec.args_model.model_fields), name
    assert not info.isError
    assert json.loads(info.content[0].text)["maxmemory"] == 32 * 2**20  # type: ignore[union-attr]


def test_read_access_serves_no_mutating_tool(stack: Stack) -> None:
    tools, [flush] = asyncio.run(_over_stdio(stack, "read", [("redis_flush", {"resource": "cache"})]))
    assert tools and all(tool.annotations and tool.annotations.readOnlyHint for tool in tools)
    assert flush.isError


def test_policy_limits_hold_over_mcp(stack: Stack) -> None:
    _, [too_big, unknown] = asyncio.run(
        _over_stdio(
            stack,
            "all",
            [("redis_scale_memory", {"resource": "cache", "maxmemory_mb": 4096}), ("redis_info", {"resource": "x"})],
        )
    )
    assert too_big.isError and "policy ceiling" in too_big.content[0].text  # type: ignore[union-attr]
    assert unknown.isError and "not in the inventory" in unknown.content[0].text  # type: ignore[union-attr]


def test_unknown_arguments_are_refused_by_name_before_anything_runs(stack: Stack) -> None:
    """FastMCP's own argument model would drop `maxmemory_mbb` and run the tool with what is left."""
    maxmemory_mb = int(probe(stack.inventory.get("cache")).metrics["maxmemory_mb"] or 0)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("redis_info", {"resource": "cache", "sectoin": "memory"}),
        ("redis_scale_memory", {"resource": "cache", "maxmemory_mb": maxmemory_mb + 16, "maxmemory_mbb": 1, "x": 2}),
    ]
    _, [info, scale] = asyncio.run(_over_stdio(stack, "all", calls))
    assert info.isError and "unknown argument(s) 'sectoin'" in info.content[0].text  # type: ignore[union-attr]
    text = scale.content[0].text  # type: ignore[union-attr]
    assert scale.isError and "'maxmemory_mbb', 'x'" in text and "it takes resource, maxmemory_mb" in text
    assert probe(stack.inventory.get("cache")).metrics["maxmemory_mb"] == maxmemory_mb  # nothing ran


def test_langchain_adapters_load_our_server_and_an_extra_one(stack: Stack, tmp_path: Path) -> None:
    inventory = yaml.safe_load(stack.inventory_path.read_text())
    inventory["mcp_servers"] = [
        {"name": "mirror", "transport": "stdio", "command": sys.executable, "args": server_args(stack)}
    ]
    path = tmp_path / "with-extra.yaml"
    path.write_text(yaml.safe_dump(inventory))
    tools = asyncio.run(load_tools(path, stack.state_dir))
    names = {tool.name for tool in tools}
    assert "opsgraph_redis_info" in names and "mirror_redis_info" in names
    assert "opsgraph_redis_flush" not in names  # the reasoner's view is read-only
    info = next(tool for tool in tools if tool.name == "opsgraph_redis_info")
    result = asyncio.run(info.ainvoke({"resource": "cache", "section": "memory"}))
    text = result if isinstance(result, str) else json.dumps(result)
    assert "maxmemory" in text


def test_mutating_calls_over_mcp_leave_intent_and_result_rows(stack: Stack) -> None:
    """No human approves an MCP call, but the ledger still says who did what, and what came of it."""
    maxmemory_mb = int(probe(stack.inventory.get("cache")).metrics["maxmemory_mb"] or 0)

    async def calls() -> list[CallToolResult]:
        params = StdioServerParameters(command=sys.executable, args=server_args(stack, "--access", "all"))
        client = Implementation(name="ops-bot", version="1.0")
        async with stdio_client(params) as (read, write), ClientSession(read, write, client_info=client) as session:
            await session.initialize()
            return [
                await session.call_tool("redis_scale_memory", {"resource": "cache", "maxmemory_mb": maxmemory_mb + 16}),
                await session.call_tool("redis_scale_memory", {"resource": "cache", "maxmemory_mb": maxmemory_mb}),
                await session.call_tool("redis_info", {"resource": "cache"}),
            ]

    raised, lowered, read = asyncio.run(calls())
    assert not raised.isError and not read.isError
    assert lowered.isError and "only raises it" in lowered.content[0].text  # type: ignore[union-attr]
    rows = stack.context().ledger.actions("mcp:ops-bot")
    assert [(row["phase"], row["tool"], row["status"]) for row in rows] == [
        ("intent", "redis_scale_memory", None),
        ("result", "redis_scale_memory", "ok"),
        ("intent", "redis_scale_memory", None),
        ("result", "redis_scale_memory", "error"),
    ]  # the read left none
    assert json.loads(rows[0]["args"]) == {"resource": "cache", "maxmemory_mb": maxmemory_mb + 16}
    with redis_client(stack.inventory.get("cache")) as client:  # the module's server as the other tests expect it
        client.config_set("maxmemory", f"{maxmemory_mb}mb")


def test_a_pause_stops_mutating_calls_over_mcp_too(stack: Stack) -> None:
    controls = Controls(Ledger(stack.state_dir / "ledger.sqlite"))
    controls.pause("erin", "maintenance window")
    try:
        _, [purge, info] = asyncio.run(
            _over_stdio(
                stack, "all", [("redis_memory_purge", {"resource": "cache"}), ("redis_info", {"resource": "cache"})]
            )
        )
    finally:
        controls.resume("erin")
    assert purge.isError and "refused (paused)" in purge.content[0].text  # type: ignore[union-attr]
    assert not info.isError  # reading goes on while paused
