"""Commands that inject and reset real faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from opsgraph.cli.app import (
    SCENARIO_HELP,
    InventoryOption,
    JsonOption,
    StateOption,
    app,
    inventory_or_exit,
)
from opsgraph.cli.console import err, fail, print_json_lines
from opsgraph.tools.faults import Scenario, UnknownScenario, scenario_named, target_of
from opsgraph.tools.inventory import Resource
from opsgraph.tools.spec import ToolContext


def aim_or_exit(
    scenario_name: str, inventory_path: Path, state_dir: Path, resource: str | None
) -> tuple[Scenario, Resource, ToolContext]:
    """The scenario, the resource it hits and a tool context; a clear message and exit 2 if any is wrong."""
    try:
        scenario = scenario_named(scenario_name)
        inventory = inventory_or_exit(inventory_path)
        target = target_of(scenario, inventory, resource)
    except (UnknownScenario, ValueError, KeyError) as error:  # KeyError: --resource names no resource
        fail(str(error.args[0]), 2)
    return scenario, target, ToolContext(inventory=inventory, state_dir=state_dir)


def inject_scenario(scenario_name: str, inventory_path: Path, state_dir: Path, resource: str | None) -> dict[str, Any]:
    scenario, target, ctx = aim_or_exit(scenario_name, inventory_path, state_dir, resource)
    return {"scenario": scenario.name, "resource": target.name, **scenario.inject(target, ctx)}


@app.command(rich_help_panel="Faults")
def inject(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    resource: Annotated[str | None, typer.Option(help="Target resource (default: the first of its kind).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Inject a real fault into a real target (see the scenario list in --help)."""
    result = inject_scenario(scenario, inventory, state_dir, resource)
    _report(f"injected {scenario}", result, as_json)


@app.command(rich_help_panel="Faults")
def reset(
    scenario: Annotated[str, typer.Argument(help=SCENARIO_HELP)],
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    resource: Annotated[str | None, typer.Option(help="Target resource (default: the first of its kind).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Take an injected fault away again (ballast, held sessions, connection holders)."""
    chosen, target, ctx = aim_or_exit(scenario, inventory, state_dir, resource)
    aimed = {"scenario": chosen.name, "resource": target.name}
    if chosen.reset is None:
        err.print(escape(f"{scenario} has nothing to reset: fixing the incident ends it"))
        if as_json:
            print_json_lines([{**aimed, "nothing_to_reset": True}])
        return
    _report(f"reset {scenario} on {target.name}", {**aimed, **chosen.reset(target, ctx)}, as_json)


def _report(what: str, result: dict[str, Any], as_json: bool) -> None:
    """The result as one JSON line on stdout with --json; otherwise one progress line on stderr."""
    if as_json:
        print_json_lines([result])
    else:
        err.print(f"{what}: {escape(json.dumps(result, default=str))}", highlight=False)
