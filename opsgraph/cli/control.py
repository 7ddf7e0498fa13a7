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

from opsgraph.cli.app import StateOption, app
from opsgraph.cli.console import fail, out
from opsgraph.graph.control import EVERYTHING, Controls
from opsgraph.graph.ledger import Ledger

ResourceScope = Annotated[
    str | None, typer.Option("--resource", help="Only this inventory resource (default: everything).")
]
By = Annotated[str | None, typer.Option("--by", help="Who decides (default: your user name); recorded.")]


def _controls(state_dir: Path) -> Controls:
    return Controls(Ledger(state_dir / "ledger.sqlite"))


@app.command(rich_help_panel="Incidents")
def pause(
    resource: ResourceScope = None,
    by: By = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown in every refusal).")] = None,
    state_dir: StateOption = Path(".opsgraph"),
) -> None:
    """Stop every worker from starting mutating actions (diagnosis goes on) until `opsgraph resume`."""
    stop = _controls(state_dir).pause(by or getpass.getuser(), reason, resource or EVERYTHING)
    out.print(Text(stop.describe()), highlight=False, soft_wrap=True)


@app.command(rich_help_panel="Incidents")
def resume(resource: ResourceScope = None, by: By = None, state_dir: StateOption = Path(".opsgraph")) -> None:
    """Lift a pause, or (with --resource) the hold OpsGraph put on a resource after a crash loop or cap."""
    who = by or getpass.getuser()
    controls = _controls(state_dir)
    lifted = controls.resume(who, resource or EVERYTHING)
    if lifted is None:
        what = f"{resource} is" if resource else "OpsGraph is"
        held = ", ".join(stop.scope for stop in controls.stops_in_force() if stop.scope != EVERYTHING)
        hint = f" (held or paused: {held}; pass --resource)" if held and not resource else ""
        fail(f"{what} neither paused nor held{hint}")
    where = "everything" if lifted.scope == EVERYTHING else lifted.scope
    text = f"{where}: resumed by {who} (was {lifted.state} by {lifted.by}); OpsGraph may act again"
    out.print(Text(text), highlight=False, soft_wrap=True)
