"""The `opsgraph` command line: run the local stack, scan, inject faults, fix, look back, and run the evals.

One module per command group; importing them registers their commands on `app`.
"""

from __future__ import annotations

from opsgraph.cli import catalogue, chat, control, evals, faults, incidents, serve, stack
from opsgraph.cli.app import OPERATOR_ERRORS, app
from opsgraph.cli.console import print_error

__all__ = ["app", "catalogue", "chat", "control", "evals", "faults", "incidents", "run", "serve", "stack"]


def run() -> None:
    """Entry point of the `opsgraph` command."""
    try:
        app()
    except OPERATOR_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print_error(str(message))
        raise SystemExit(1) from None
