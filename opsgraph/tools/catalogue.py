"""The tool catalogue: every action OpsGraph can take, declared once with its type and risk.

A tool is a plain typed function plus a Pydantic argument model, the kind of resource
it targets, a risk class and (where one exists) how to undo it, declared once with
`spec.declare` on the function; each tool module lists its declared tools in `TOOLS`.
The policy engine, the executor, the reasoning backends and the MCP server all read
this one table; nothing runs that is not declared here.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools import docker_tools, gcp_tools, nginx_tools, postgres_tools, process_tools, redis_tools
from opsgraph.tools.inventory import Resource
from opsgraph.tools.spec import ToolSpec


def _build_catalogue(*modules_tools: list[ToolSpec[Any]]) -> dict[str, ToolSpec[Any]]:
    specs = [spec for tools in modules_tools for spec in tools]
    table = {spec.name: spec for spec in specs}
    if len(table) != len(specs):
        raise RuntimeError("two catalogue tools share a name")
    return table


CATALOGUE: dict[str, ToolSpec[Any]] = _build_catalogue(
    redis_tools.TOOLS,
    postgres_tools.TOOLS,
    nginx_tools.TOOLS,
    docker_tools.TOOLS,
    process_tools.TOOLS,
    gcp_tools.TOOLS,
)


def tools_for(resource: Resource) -> list[ToolSpec[Any]]:
    """The tools that can act on this resource (its kind and its environment)."""
    return [spec for spec in CATALOGUE.values() if spec.fits(resource) is None]
