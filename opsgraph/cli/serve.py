"""`opsgraph serve`: the long-running service — watcher, REST API, alert webhooks, notifications, /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsgraph.cli.app import (
    ApprovalOption,
    InventoryOption,
    StateOption,
    app,
    inventory_or_exit,
    nonnegative_seconds,
    positive_seconds,
)
from opsgraph.cli.console import EventLog, fail
from opsgraph.graph.policy import ApprovalMode


@app.command(rich_help_panel="Incidents")
def serve(
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    approval: ApprovalOption = ApprovalMode.RISKY,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the API, the webhooks, /metrics and /healthz.", min=1, max=65535)
    ] = 8080,
    interval: Annotated[
        float, typer.Option(help="Seconds between probes of the inventory (> 0).", callback=positive_seconds)
    ] = 5.0,
    cooldown: Annotated[
        float,
        typer.Option(
            help="Seconds before a closed fingerprint (or alert) may open again (>= 0).", callback=nonnegative_seconds
        ),
    ] = 60.0,
    probes: Annotated[
        bool, typer.Option("--probes/--no-probes", help="Probe the inventory; --no-probes: alerts are the detector.")
    ] = True,
) -> None:
    """Run OpsGraph as a service: the watcher, the REST API (/api, OpenAPI at /docs), Alertmanager and
    generic alert webhooks (/alerts), notifications, /metrics and /healthz.

    API callers need a token of OPSGRAPH_API_TOKENS. Logs go to stderr, one JSON object per event off a terminal.
    """
    from opsgraph.graph.context import Context
    from opsgraph.graph.watch import WatchSettings
    from opsgraph.serve.auth import Tokens, TokensError
    from opsgraph.serve.service import ServeSettings
    from opsgraph.serve.service import serve as run_service
    from opsgraph.settings import load_settings

    inventory_or_exit(inventory)
    tokens = load_settings().api_tokens
    try:
        Tokens(tokens.get_secret_value() if tokens else None)
    except TokensError as error:
        fail(str(error))
    context = Context(inventory_path=str(inventory), state_dir=str(state_dir), approval=approval.value)
    events = EventLog()
    events.capture_logging()
    settings = ServeSettings(
        host=host, port=port, probing=probes, watch=WatchSettings(interval_s=interval, cooldown_s=cooldown)
    )
    events.say(
        f"serve: {inventory} every {interval:g} s (approval={approval.value}, probes {'on' if probes else 'off'})",
        inventory=str(inventory), interval_s=interval, approval=approval.value,
    )  # fmt: skip
    run_service(context, settings, events.say)
