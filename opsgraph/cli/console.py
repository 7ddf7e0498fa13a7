"""Terminal rendering for the CLI: progress per node, scan tables, approval prompts, reports.

Progress goes to stderr so that `--json` output on stdout stays machine-readable.
Text that comes from a user, a file, a tool or a model is printed escaped, never as
Rich markup: `[/]` in an incident id or `[x]` in a path would otherwise crash the
command (MarkupError) or silently vanish from the message.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from opsgraph.tools.redaction import redact, redact_value
from opsgraph.tools.snapshot import Snapshot

out = Console()
err = Console(stderr=True)

_HEALTH_STYLE = {"healthy": "green", "degraded": "yellow", "failed": "red"}


def print_error(message: str) -> None:
    """`error: <message>` on stderr, the message as plain text, unwrapped (a long path stays on one line)."""
    err.print(Text.assemble(("error:", "red"), " ", message), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: <message>` and end the command with `code` (2: bad usage, inventory or state folder)."""
    print_error(message)
    raise typer.Exit(code)


def progress(message: str) -> None:
    """A progress line from a lower layer (it may hold paths and names): on stderr, as text."""
    err.print(Text(message), highlight=False, soft_wrap=True)


def print_json_lines(records: Iterable[dict[str, Any]]) -> None:
    """The `--json` convention of every command: one compact JSON object per line on stdout, redacted."""
    for record in records:
        print(json.dumps(redact_value(record), default=str), flush=True)


def show_node(node: str, update: dict[str, Any]) -> None:
    for entry in update.get("timeline", []):
        err.print(f"[bold cyan]{node:>13}[/] {escape(entry['event'])}", highlight=False)


def _log_record(level: str, message: str, fields: dict[str, Any]) -> str:
    """One event as one JSON line: UTC timestamp, level, message, then the event's own fields; redacted."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(redact_value({"ts": stamp, "level": level, "message": message, **fields}), default=str)


class EventLog:
    """Where a long-running command (`watch`) reports events, on stderr.

    On a terminal: readable lines for a person. Anywhere else (a file, a pipe, a container
    log): one JSON object per line with `ts`, `level` and `message`, never wrapped, so a
    log shipper or `grep` sees exactly one line per event, in order, with its time.
    """

    def __init__(self, structured: bool | None = None) -> None:
        self.structured = not sys.stderr.isatty() if structured is None else structured
        self._lock = threading.Lock()  # incident runs report from several threads

    def say(self, text: str, level: str = "info", **fields: Any) -> None:
        if self.structured:
            self._write(_log_record(level, text, fields))
            return
        style = {"warning": "yellow", "error": "red"}.get(level)
        text = redact(text)
        line = f"[{style}]{escape(text)}[/]" if style else escape(text)
        if node := fields.get("node"):
            line = f"[bold cyan]{escape(str(node)):>13}[/] {line}"
        err.print(line, highlight=False, soft_wrap=True)

    def capture_logging(self) -> None:
        """Route Python logging (e.g. a crashed run's traceback) through the same form, redacted:
        one JSON line when structured, a plain line on a terminal. A traceback can quote a
        connection string, so no logging path may print it raw."""
        formatter = _JsonFormatter() if self.structured else _RedactingFormatter("%(levelname)s %(name)s: %(message)s")
        root = logging.getLogger()
        if not root.handlers:  # else Python's last-resort handler would print records unformatted
            root.addHandler(logging.StreamHandler())
        for handler in root.handlers:
            handler.setFormatter(formatter)

    def _write(self, line: str) -> None:
        with self._lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {"logger": record.name}
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return _log_record(record.levelname.lower(), record.getMessage(), fields)


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
            err.print(f"    digest: {escape(step['digest'])}")
            err.print(f"    why: {escape(step['rationale'])}\n    expect: {escape(step['expected_effect'])}")
            if step.get("undo"):
                err.print(f"    undo: {escape(step['undo'])}")
        err.print(escape("Approve? [y/N] "), end="")
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
    status = "[green]RESOLVED[/]" if report["resolved"] else f"[red]{escape(str(report.get('outcome')).upper())}[/]"
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
