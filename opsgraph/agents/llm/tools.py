"""The read-only tools the model may call: the catalogue's, in process, and extra MCP servers'.

Catalogue reads go through `read` (the backend's only door to the catalogue, which
refuses anything that is not read-only). Extra servers' tools are offered only when
the server annotates them `readOnlyHint`; their names carry the server's prefix, and
one that would shadow a catalogue tool is left out. Either way the output the model
reads is redacted, compacted and framed as untrusted data, and a plan naming an
extra tool is refused by the policy engine, which knows only the catalogue.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from opsgraph.agents.llm.render import tool_result
from opsgraph.agents.llm.scrub import Scrubber
from opsgraph.agents.reasoning import ReadTool
from opsgraph.agents.toolbox import load_server_tools, run_sync
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.inventory import Inventory, McpServer, Resource
from opsgraph.tools.risk import Risk
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.spec import ToolSpec

log = logging.getLogger(__name__)


def catalogue_tools(
    resource_name: str,
    kind: str,
    read: ReadTool,
    scrubber: Scrubber,
    inventory: Inventory | None,
    resource: Resource | None = None,
) -> list[StructuredTool]:
    """LangChain tools for the catalogue's read tools that fit the resource; each calls `read`."""
    if resource is None and inventory is not None and inventory.has(resource_name):
        resource = inventory.get(resource_name)
    specs = [
        spec
        for spec in CATALOGUE.values()
        if spec.risk is Risk.READ
        and (spec.fits(resource) is None if resource is not None else spec.target_kind in (None, kind))
    ]
    return [_catalogue_tool(spec, read, scrubber) for spec in specs]


def _catalogue_tool(spec: ToolSpec[Any], read: ReadTool, scrubber: Scrubber) -> StructuredTool:
    def call(**kwargs: Any) -> str:
        return tool_result(spec.name, read(spec.name, kwargs), scrubber)

    def invalid(error: Exception) -> str:
        return f"error: invalid arguments for {spec.name}: {error}; nothing was run"

    return StructuredTool.from_function(
        func=call,
        name=spec.name,
        description=spec.description,
        args_schema=spec.args_model,
        handle_validation_error=invalid,
    )


def extra_tools(
    servers: Iterable[McpServer], scrubber: Scrubber, timeout_s: float
) -> tuple[list[StructuredTool], list[str]]:
    """The extra servers' read-only tools, callable from sync code, and a note per server that failed.

    A server that does not start or list its tools in time is left out: the
    investigation goes on with the others, and the note says why.
    """
    tools: list[StructuredTool] = []
    notes: list[str] = []
    for server in servers:
        try:
            loaded = run_sync(partial(load_server_tools, server), timeout_s)
        except Exception as error:  # any failure of an extra server leaves it out, with the reason noted
            reason = f"extra MCP server {server.name!r} unavailable: {_describe(error)}"
            log.warning("%s; diagnosing without it", reason, exc_info=True)
            notes.append(scrubber.clean(reason)[:300])
            continue
        tools.extend(_extra_tool(tool, scrubber, timeout_s) for tool in loaded if _offered(tool))
    return tools, notes


def _offered(tool: BaseTool) -> bool:
    """Read-only by the server's own annotation, and not shadowing a catalogue tool."""
    read_only = (tool.metadata or {}).get("readOnlyHint") is True
    return read_only and tool.name not in CATALOGUE


def _extra_tool(tool: BaseTool, scrubber: Scrubber, timeout_s: float) -> StructuredTool:
    def call(**kwargs: Any) -> str:
        return tool_result(tool.name, _call_extra(tool, kwargs, timeout_s), scrubber)

    return StructuredTool(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
        func=call,
    )


def _call_extra(tool: BaseTool, args: dict[str, Any], timeout_s: float) -> ToolOutcome:
    started = time.monotonic()
    try:
        content = run_sync(partial(tool.ainvoke, args), timeout_s)
    except Exception as error:  # the server's error, a timeout or a lost connection: the model reads it
        log.warning("extra MCP tool %s failed", tool.name, exc_info=True)
        return ToolOutcome(ok=False, error=_describe(error), duration_s=time.monotonic() - started)
    return ToolOutcome(ok=True, output={"result": _decoded(content)}, duration_s=time.monotonic() - started)


def _decoded(content: object) -> object:
    """MCP text blocks as their text, JSON parsed where it is JSON: compaction then keeps the structure."""
    blocks = content if isinstance(content, list) else [content]
    texts = [b["text"] if isinstance(b, dict) and b.get("type") == "text" else b for b in blocks]
    decoded: list[object] = []
    for item in texts:
        try:
            decoded.append(json.loads(item) if isinstance(item, str) else item)
        except json.JSONDecodeError:
            decoded.append(item)
    return decoded[0] if len(decoded) == 1 else decoded


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return _describe(error.exceptions[0])
    return f"{type(error).__name__}: {error}"[:300]
