"""A scenario's system, for one run: fresh servers on fresh ports, the fault, the independent check, teardown.

`prepared(scenario, folder)` writes the run's inventory (every port chosen now, free on
loopback), starts the servers — OpsGraph's local stack for `started_by: opsgraph`, the
harness itself for `started_by: outside` — and always takes everything down again, fault
resets first, whatever happened in between. `inject` applies the scenario's faults through
the fault catalogue; `recovered` runs the scenario's own recovery check through its settle
window. Nothing here runs OpsGraph's graph: the runner does, between `inject` and
`recovered`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opsgraph.evals.checks import CHECKS, CheckResult
from opsgraph.evals.scenario import EvalScenario, ServerSpec
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.faults import scenario_named
from opsgraph.tools.inventory import Inventory, load_inventory
from opsgraph.tools.spec import ToolContext

CHECK_INTERVAL_S = 0.2


class HarnessError(RuntimeError):
    """A scenario's system could not be set up, or names a fault or check that does not exist."""


@dataclass
class Prepared:
    """One run's system: where its inventory and state live, and what was injected."""

    scenario: EvalScenario
    folder: Path
    inventory_path: Path
    state_dir: Path
    inventory: Inventory
    injected: list[dict[str, Any]] = field(default_factory=list)
    injected_at: float | None = None

    @property
    def tools(self) -> ToolContext:
        return ToolContext(self.inventory, self.state_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(server: ServerSpec) -> dict[str, Any]:
    """The inventory entry of an OpsGraph-started server, on a fresh port."""
    entry = {key: value for key, value in server.inventory.items() if key != "connection"}
    connection = {"host": "127.0.0.1", **server.inventory.get("connection", {}), "port": free_port()}
    return {"name": server.name, "kind": server.kind, "environment": "local", "connection": connection, **entry}


@contextmanager
def prepared(scenario: EvalScenario, folder: Path) -> Iterator[Prepared]:
    """The scenario's servers, up, with their inventory; down again (and the faults reset) when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    outside = [s for s in scenario.servers if s.started_by == "outside"]
    if outside:
        raise HarnessError(f"{scenario.name}: servers started outside OpsGraph are not supported yet: {outside}")
    inventory_path = folder / "opsgraph.yaml"
    entries = [_entry(server) for server in scenario.servers]
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": entries}, sort_keys=False))
    state_dir = folder / "state"
    inventory = load_inventory(inventory_path)
    with ExitStack() as cleanup:
        stack = LocalStack(state_dir, inventory)
        cleanup.callback(stack.down)
        stack.up()
        run = Prepared(scenario, folder, inventory_path, state_dir, inventory)
        cleanup.callback(_reset, run)
        yield run


def inject(run: Prepared) -> list[dict[str, Any]]:
    """Apply every fault of the scenario, in order; returns what each did. The fault exists from `injected_at`."""
    for injection in run.scenario.inject:
        try:
            fault = scenario_named(injection.fault)
        except KeyError as unknown:
            raise HarnessError(f"{run.scenario.name}: {unknown.args[0]}") from None
        resource = run.inventory.get(injection.resource)
        run.injected.append({"fault": fault.name, "resource": resource.name, **fault.inject(resource, run.tools)})
    run.injected_at = time.time()
    return run.injected


def _reset(run: Prepared) -> None:
    """Take the faults away (their own data only) before the servers go down; a reset that fails is not fatal."""
    for injection in reversed(run.scenario.inject):
        fault = scenario_named(injection.fault)
        if fault.reset is not None:
            try:
                fault.reset(run.inventory.get(injection.resource), run.tools)
            except Exception:  # noqa: BLE001 — the servers go down next anyway; teardown must go on
                continue


def recovered(run: Prepared, deadline_s: float = 30.0) -> CheckResult:
    """The scenario's own recovery check: passing, then still passing through the settle window.

    Waits up to `deadline_s` for a first pass (a fix may take a moment to show); a failure
    inside the settle window fails the check with what it saw.
    """
    spec = run.scenario.recovery
    if spec.check not in CHECKS:
        raise HarnessError(f"{run.scenario.name}: unknown recovery check {spec.check!r}; known: {sorted(CHECKS)}")
    check = CHECKS[spec.check]
    deadline = time.monotonic() + deadline_s
    result = check(run.inventory, spec.args)
    while not result.ok and time.monotonic() < deadline:
        time.sleep(CHECK_INTERVAL_S)
        result = check(run.inventory, spec.args)
    if not result.ok:
        return result
    settled = time.monotonic() + spec.settle_s
    while time.monotonic() < settled:
        time.sleep(CHECK_INTERVAL_S)
        result = check(run.inventory, spec.args)
        if not result.ok:
            return CheckResult(
                False, f"passed, then failed within the {spec.settle_s:g} s settle window: {result.detail}"
            )
    return CheckResult(True, f"{result.detail}; held for {spec.settle_s:g} s")
