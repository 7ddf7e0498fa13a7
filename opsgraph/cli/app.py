"""The `opsgraph` Typer app, its shared options, and helpers every command group uses."""

from __future__ import annotations

import logging
import math
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from opsgraph.agents.models import ModelConfigError
from opsgraph.cli.console import fail
from opsgraph.graph.policy import ApprovalMode
from opsgraph.graph.stores import StateStoreError
from opsgraph.graph.tracing import configure_tracing
from opsgraph.settings import Settings, load_settings
from opsgraph.tools.binaries import MissingBinaryError
from opsgraph.tools.environments import UnsupportedEnvironment
from opsgraph.tools.environments.local import LocalStack, LocalStackError
from opsgraph.tools.faults import SCENARIOS
from opsgraph.tools.inventory import Inventory, InventoryError, load_inventory
from opsgraph.tools.spec import ToolError
from opsgraph.tools.traffic import TrafficError

# Failures an operator can act on: shown as one clear line, not a traceback.
OPERATOR_ERRORS = (
    InventoryError,
    LocalStackError,
    MissingBinaryError,
    ToolError,
    UnsupportedEnvironment,
    TrafficError,
    ModelConfigError,
    StateStoreError,
    KeyError,
)

app = typer.Typer(
    help="OpsGraph: an autonomous on-call SRE.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
incidents_app = typer.Typer(help="List and show incidents from the ledger.", no_args_is_help=False)
app.add_typer(incidents_app, name="incidents", rich_help_panel="Incidents")

SCENARIO_HELP = "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())


def usable_state_dir(path: Path) -> Path:
    """The state folder, refused before any command runs when it is a file or has no parent folder.

    Commands create the folder and open SQLite files in it: a file in its place used to end
    in a traceback halfway through. A missing parent is refused rather than created, so a
    typo in the path does not grow a new tree of state somewhere else.
    """
    where = f"state folder {path} (--state-dir or OPSGRAPH_HOME)"
    if path.exists() and not path.is_dir():
        fail(f"{where} is not a folder", 2)
    if not path.exists() and not path.parent.is_dir():
        fail(f"{where}: its parent {path.parent} is not an existing folder", 2)
    return path


def positive_seconds(param: typer.CallbackParam, value: float) -> float:
    """A pause between rounds: finite and above 0 (0, -1 or nan would spin without a pause)."""
    if not (math.isfinite(value) and value > 0):
        fail(f"{param.opts[0]} must be a finite number of seconds above 0, got {value:g}", 2)
    return value


def nonnegative_seconds(param: typer.CallbackParam, value: float) -> float:
    """A waiting time that may be 0 but never negative or nan (nan compares false with everything)."""
    if not (math.isfinite(value) and value >= 0):
        fail(f"{param.opts[0]} must be a finite number of seconds, 0 or more, got {value:g}", 2)
    return value


# The shared options' defaults come from the settings (env or .env): see `_setting_defaults`.
InventoryOption = Annotated[
    Path, typer.Option("--inventory", "-i", help="Inventory file (env OPSGRAPH_INVENTORY or .env).")
]
StateOption = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        help="Ledger, checkpoints and local servers (env OPSGRAPH_HOME or .env).",
        callback=usable_state_dir,
    ),
]
ApprovalOption = Annotated[
    ApprovalMode,
    typer.Option(
        "--approval", help="Steps that wait for a human: risky, all, none or read-only (env OPSGRAPH_APPROVAL or .env)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="JSON Lines on stdout (one object per line); progress stays on stderr.")
]
ApproverOption = Annotated[str | None, typer.Option("--approver", help="Name recorded with approvals.")]


def inventory_or_exit(path: Path) -> Inventory:
    """The inventory, or a clear message naming the field and exit status 2."""
    try:
        return load_inventory(path)
    except InventoryError as error:
        fail(str(error), 2)


def local_stack(inventory: Path, state_dir: Path) -> LocalStack:
    return LocalStack(state_dir, inventory_or_exit(inventory))


def _print_version(asked: bool) -> None:
    if asked:
        print(f"opsgraph {version('opsgraph')}")
        raise typer.Exit()


def _setting_defaults(command: object, settings: Settings) -> dict[str, object]:
    """Click's default map for `command` and every subcommand: the shared options take the settings' values.

    A flag on the command line still wins; the settings already put the environment over `.env`.
    """
    defaults: dict[str, object] = {
        "inventory": settings.inventory,
        "state_dir": settings.home,
        "approval": settings.approval,
        "server": settings.langgraph_url,
    }
    if isinstance(command, TyperGroup):
        defaults |= {name: _setting_defaults(sub, settings) for name, sub in command.commands.items()}
    return defaults


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.default_map = _setting_defaults(ctx.command, load_settings())
    configure_tracing()
