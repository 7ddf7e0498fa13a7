"""The stop switch on the command line: `opsgraph pause` and `opsgraph resume`.

Both write a row next to the ledger of the state folder (see `opsgraph.graph.control`), so
every process sharing it — any number of `watch`es, `approve`, `fix` — sees it at its next
probe or step. `resume --resource X` is also how a human releases a resource OpsGraph held
itself after a crash loop or a spent action cap.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from opsgraph.cli.app import InventoryOption, StateOption, app, inventory_or_exit
from opsgraph.cli.console import fail, out
from opsgraph.graph.control import EVERYTHING, Controls
from opsgraph.graph.ledger import Ledger

ResourceScope = Annotated[
    str | None, typer.Option("--resource", help="Only this inventory resource (default: everything).")
]
By = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user name); recorded.")]


def _controls(state_dir: Path) -> Controls:
    return Controls(Ledger(state_dir / "ledger.sqlite"))


def _scope(resource: str | None, inventory: Path) -> str:
    """What to stop or resume: everything, or a resource the inventory names (a typo must not
    pause nothing while the operator believes it paused something)."""
    if resource is None:
        return EVERYTHING
    names = [r.name for r in inventory_or_exit(inventory).resources]
    if resource not in names:
        fail(f"no resource named {resource!r} in {inventory} (it has: {', '.join(names)})", 2)
    return resource


@app.command(rich_help_panel="Incidents")
def pause(
    resource: ResourceScope = None,
    by: By = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown in every refusal).")] = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Stop every worker from starting mutating actions (diagnosis goes on) until `opsgraph resume`."""
    stop = _controls(state_dir).pause(by or getpass.getuser(), reason, _scope(resource, inventory))
    out.print(Text(stop.describe()), highlight=False, soft_wrap=True)


@app.command(rich_help_panel="Incidents")
def resume(
    resource: ResourceScope = None,
    by: By = None,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Lift a pause, or (with --resource) the hold OpsGraph put on a resource after a crash loop or cap."""
    who = by or getpass.getuser()
    controls = _controls(state_dir)
    lifted = controls.resume(who, _scope(resource, inventory))
    if lifted is None:
        what = f"{resource} is" if resource else "OpsGraph is"
        held = ", ".join(stop.scope for stop in controls.stops_in_force() if stop.scope != EVERYTHING)
        hint = f" (held or paused: {held}; pass --resource)" if held and not resource else ""
        fail(f"{what} neither paused nor held{hint}")
    where = "everything" if lifted.scope == EVERYTHING else lifted.scope
    text = f"{where}: resumed by {who} (was {lifted.state} by {lifted.by}); OpsGraph may act again"
    out.print(Text(text), highlight=False, soft_wrap=True)
