"""Lifecycle tools for the local environment's supervised processes: restart, logs, stats.

They act on any `environment: local` resource, whatever its kind, through the same
LocalStack that `opsgraph up` uses; stats come straight from /proc.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import Environment
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stack(ctx: ToolContext) -> LocalStack:
    return LocalStack(ctx.state_dir, ctx.inventory)


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from `state` on; comm may hold spaces


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue  # exited while we looked
    return found


def _process_facts(pid: int) -> dict[str, Any]:
    fields = _stat_fields(pid)
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    return {
        "pid": pid,
        "state": fields[0],
        "cpu_seconds": round((int(fields[11]) + int(fields[12])) / _TICKS, 2),
        "threads": int(fields[17]),
        "rss_mb": round(int(fields[21]) * _PAGE / 2**20, 1),
        "uptime_s": round(time.time() - (boot + int(fields[19]) / _TICKS), 1),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def process_stats(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """CPU time, memory, threads, descriptors and uptime of the process and its children (read-only)."""
    [status] = [s for s in _stack(ctx).status() if s.name == args.resource]
    if status.pid is None:
        raise ToolError(f"{args.resource} is not running (no live pid); its log: {status.log_path}")
    try:
        return {
            "running": status.running,
            **_process_facts(status.pid),
            "children": [_process_facts(child) for child in _children(status.pid)],
        }
    except FileNotFoundError:
        raise ToolError(f"{args.resource} (pid {status.pid}) exited while being read") from None


class ProcessLogsArgs(ToolArgs):
    lines: Annotated[int, Field(ge=1, le=500, description="How many of the last log lines")] = 50


def process_logs(args: ProcessLogsArgs, ctx: ToolContext) -> dict[str, Any]:
    """The last lines of the process's log (untrusted text: it may contain anything)."""
    return {"lines": _stack(ctx).log_tail(args.resource, args.lines)}


def process_restart(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Stop and start the process with its inventory settings; in-memory state is lost."""
    status = _stack(ctx).restart(args.resource)
    return {"pid": status.pid, "running": status.running}


TOOLS: list[ToolSpec[Any]] = [
    ToolSpec(
        name="process_stats",
        description="CPU, memory, threads, open files and uptime of a local resource's process and its children.",
        args_model=ToolArgs,
        target_kind=None,
        environment=Environment.LOCAL,
        risk=Risk.READ,
        run=process_stats,
        idempotent=True,
    ),
    ToolSpec(
        name="process_logs",
        description="The last lines of a local resource's log file.",
        args_model=ProcessLogsArgs,
        target_kind=None,
        environment=Environment.LOCAL,
        risk=Risk.READ,
        run=process_logs,
        idempotent=True,
    ),
    ToolSpec(
        name="process_restart",
        description="Restart a local resource's process (stop, then start with its inventory settings).",
        args_model=ToolArgs,
        target_kind=None,
        environment=Environment.LOCAL,
        risk=Risk.DISRUPTIVE,
        run=process_restart,
        idempotent=False,
    ),
]
