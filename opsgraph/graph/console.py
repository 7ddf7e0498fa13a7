"""Terminal rendering for the CLI: progress per node, scan tables, approval prompts, reports.

Progress goes to stderr so that `--json` output on stdout stays machine-readable.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opsgraph.graph.schemas import Snapshot

out = Console()
err = Console(stderr=True)

_HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "failed": "red"}


def show_node(node: str, update: dict[str, Any]) -> None:
    for entry in update.get("timeline", []):
        err.print(f"[bold cyan]{node:>13}[/] {escape(entry['event'])}", highlight=False)


def scan_table(snapshots: list[Snapshot], runners: dict[str, str]) -> Table:
    """The health table; `runners` says, per resource, who starts and stops its server."""
    table = Table(title="OpsGraph scan")
    for column in ("resource", "kind", "health", "symptom", "run by", "details"):
        table.add_column(column)
    for snap in snapshots:
        details = "; ".join(snap.reasons) or ", ".join(f"{k}={v}" for k, v in list(snap.metrics.items())[:3])
        style = _HEALTH_STYLE[snap.health]
        health = f"[{style}]{snap.health}[/]"
        runner = escape(runners.get(snap.resource, ""))
        table.add_row(snap.resource, snap.kind, health, snap.symptom or "", runner, escape(details))
    return table


def terminal_approver(approver_name: str | None) -> Any:
    """An Approver that asks on the terminal (or reads piped answers from stdin)."""

    def ask(request: dict[str, Any]) -> dict[str, Any] | None:
        # Everything below may come from a reasoning backend: printed escaped, never as markup.
        err.print(f"\n[bold yellow]Approval needed[/] for incident {escape(request['incident_id'])}")
        if request.get("error"):
            err.print(f"[red]{escape(request['error'])}[/]")
        if request.get("warning"):
            err.print(f"[bold red]⚠ {escape(request['warning'])}[/]")
        err.print(escape(request["question"]))
        for step in request["steps"]:
            err.print(f"  • [bold]{escape(step['tool'])}[/] {escape(json.dumps(step['args']))}  risk={step['risk']}")
            err.print(f"    why: {escape(step['rationale'])}\n    expect: {escape(step['expected_effect'])}")
            if step.get("undo"):
                err.print(f"    undo: {escape(step['undo'])}")
        err.print("Approve? [y/N] ", end="")
        line = sys.stdin.readline()
        if not line:
            err.print("\nno answer (stdin closed): the incident stays paused and checkpointed")
            return None
        decision = "approve" if line.strip().lower() in ("y", "yes") else "reject"
        return {
            "decision": decision,
            "by": approver_name or getpass.getuser(),
            "digests": [step["digest"] for step in request["steps"]],
        }

    return ask


def show_report(report: dict[str, Any]) -> None:
    status = "[green]RESOLVED[/]" if report["resolved"] else f"[red]{str(report.get('outcome')).upper()}[/]"
    out.print(f"\n{status} {escape(report['incident_id'])} ({escape(str(report.get('resource')))})")
    if report.get("outcome_detail"):
        out.print(f"  {escape(report['outcome_detail'])}")
    if report.get("root_cause"):
        out.print(f"  root cause: {escape(report['root_cause'])}")
    for action in report.get("actions", []):
        out.print(f"  action: {escape(action['tool'])} {escape(json.dumps(action['args']))} -> {action['status']}")
    if report.get("mttd_s") is not None:
        out.print(f"  MTTD {report['mttd_s']:.2f} s", end="")
        out.print(f"   MTTR {report['mttr_s']:.2f} s" if report.get("mttr_s") is not None else "")
