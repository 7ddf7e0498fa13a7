"""A scenario's system, for one run: fresh servers on fresh ports, the fault, the independent check, teardown.

`prepared(scenario, folder)` writes the run's inventory (every port chosen now, free on
loopback), starts the servers — OpsGraph's local stack for `started_by: opsgraph`, the
harness itself for `started_by: outside` (`opsgraph.evals.outside`: own config files and
data folders, `environment: external`; containers in a private Docker Engine started for
the run, `environment: docker`; GCP instances in the local GCP emulator, `evals.gcp_system`)
— writes the scenario's seed data, and always takes
everything down again, fault resets first, whatever happened in between. `inject` applies
the scenario's faults through the fault catalogue; `recovered` runs the scenario's own
recovery check through its settle window. Nothing here runs OpsGraph's graph: the runner
does, between `inject` and `recovered`.

For the run's duration the process environment carries what OpsGraph needs to reach the
outside servers — each outside PostgreSQL's superuser password (in the variable its
inventory entry names) and `DOCKER_HOST` — so a graph run in this process or in a child
sees them; they are restored afterwards. Container scenarios carry the tag `docker`
(their environment): they need `dockerd` and busybox (apt-get install docker.io
busybox-static), about 1 s more per scenario for the engine.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import yaml
from docker.errors import DockerException
from psycopg import sql
from pydantic import ValidationError

from opsgraph.evals.checks import CHECKS, CheckResult, check_problems, seed_value
from opsgraph.evals.gcp_system import GcpInstances
from opsgraph.evals.outside import (
    BUSYBOX_IMAGE,
    DockerEngine,
    OutsideError,
    OutsidePostgres,
    OutsideRedis,
    free_port,
    wait_until,
)
from opsgraph.evals.scenario import (
    EvalScenario,
    OutsideContainer,
    PostgresSeed,
    RedisSeed,
    ServerSpec,
)
from opsgraph.evals.scenario import (
    OutsidePostgres as OutsidePostgresSpec,
)
from opsgraph.evals.scenario import (
    OutsideRedis as OutsideRedisSpec,
)
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.environments.local.process import LocalStackError
from opsgraph.tools.faults import SCENARIOS, scenario_named
from opsgraph.tools.faults.containers import WORKING_SET_WORKLOAD
from opsgraph.tools.inventory import Inventory, InventoryError, load_inventory
from opsgraph.tools.redis_tools import forget_kept_clients
from opsgraph.tools.spec import ToolContext

CHECK_INTERVAL_S = 0.2
# A long-running main process that ends at once on SIGTERM (a shell as PID 1 ignores it otherwise).
IDLE_WORKLOAD = ["sh", "-c", "trap 'exit 0' TERM; echo started; while true; do sleep 1 & wait $!; done"]
_WORKLOADS = {"idle": IDLE_WORKLOAD, "working-set": WORKING_SET_WORKLOAD}


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
    # The private Docker Engine's folder, for a scenario with containers (gone after teardown).
    docker_root: Path | None = None

    @property
    def tools(self) -> ToolContext:
        return ToolContext(self.inventory, self.state_dir)


def scenario_problems(scenario: EvalScenario) -> list[str]:
    """What would stop the scenario from running: unknown faults, faults aimed at the wrong kind, bad checks."""
    kinds = {server.name: server.kind for server in scenario.servers}
    problems = []
    for index, injection in enumerate(scenario.inject):
        where = f"inject[{index}]"
        fault = SCENARIOS.get(injection.fault)
        if fault is None:
            problems.append(f"{where}: unknown fault {injection.fault!r}; known: {', '.join(sorted(SCENARIOS))}")
        elif fault.target_kind.value != kinds[injection.resource]:
            kind = kinds[injection.resource]
            problems.append(f"{where}: {fault.name} hits a {fault.target_kind}, {injection.resource} is a {kind}")
        if injection.params:
            problems.append(f"{where}: faults take no params (they size themselves from the server they hit)")
    problems += [f"recovery: {p}" for p in check_problems(scenario.recovery.check, scenario.recovery.args, kinds)]
    return problems


class _Environment:
    """Variables set for the run, restored (or removed) at teardown."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _merged(entry: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The generated entry with the scenario's own inventory keys (connection and external merge, one level)."""
    merged = dict(entry)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _local_entry(server: ServerSpec) -> dict[str, Any]:
    """The inventory entry of an OpsGraph-started server, on a fresh port."""
    entry = {key: value for key, value in server.inventory.items() if key != "connection"}
    connection = {"host": "127.0.0.1", **server.inventory.get("connection", {}), "port": free_port()}
    return {"name": server.name, "kind": server.kind, "environment": "local", "connection": connection, **entry}


def _lifecycle(lifecycle: str, start: list[str]) -> dict[str, Any]:
    return {"lifecycle": lifecycle, **({"commands": {"start": start}} if lifecycle == "commands" else {})}


def _outside_redis(server: ServerSpec, settings: OutsideRedisSpec, folder: Path, cleanup: ExitStack) -> dict[str, Any]:
    outside = OutsideRedis(
        folder.resolve(), maxmemory_mb=settings.maxmemory_mb, maxclients=settings.maxclients,
        appendonly=settings.appendonly,
    )  # fmt: skip
    cleanup.callback(outside.stop)
    outside.start()
    return outside.inventory_entry(server.name, **_lifecycle(settings.lifecycle, outside.start_command))


def _outside_postgres(
    server: ServerSpec, settings: OutsidePostgresSpec, folder: Path, cleanup: ExitStack, environment: _Environment
) -> dict[str, Any]:
    config = {
        name: str(value)
        for name, value in (
            ("max_connections", settings.max_connections),
            ("superuser_reserved_connections", settings.superuser_reserved_connections),
        )
        if value is not None
    }
    trusted = [settings.app_user] if settings.app_user else []
    outside = OutsidePostgres(folder, config, password=secrets.token_urlsafe(18), trusted=trusted)
    cleanup.callback(outside.cleanup)
    outside.initdb()
    outside.start()
    if settings.app_user is not None:
        outside.create_app(settings.app_user, settings.database)
    password_env = f"OPSGRAPH_EVAL_{server.name.upper().replace('-', '_')}_PASSWORD"
    environment.set(password_env, outside.password)
    lifecycle = _lifecycle(settings.lifecycle, outside.start_argv())
    return outside.inventory_entry(server.name, password_env, settings.database, **lifecycle)


def _container(server: ServerSpec, settings: OutsideContainer, engine: DockerEngine, run_id: str) -> dict[str, Any]:
    name = f"eval-{run_id}-{server.name}"
    limits: dict[str, Any] = {}
    if settings.memory_mb is not None:
        limits = {"mem_limit": f"{settings.memory_mb}m", "memswap_limit": f"{settings.memory_mb}m"}
    container = engine.client.containers.run(
        BUSYBOX_IMAGE,
        _WORKLOADS[settings.workload],
        name=name,
        detach=True,
        restart_policy={"Name": settings.restart},
        labels={"opsgraph.eval": run_id},
        **limits,
    )

    def started() -> bool:
        container.reload()
        return bool(container.attrs["State"]["Running"]) and "started" in container.logs().decode(errors="replace")

    wait_until(started, f"container {name} to start", 30)
    return {"name": server.name, "kind": "container", "environment": "docker", "docker": {"container": name}}


def _add_gcp(
    gcp: GcpInstances,
    server: ServerSpec,
    settings: OutsideRedisSpec | OutsidePostgresSpec | OutsideContainer | None,
    folder: Path,
    cleanup: ExitStack,
    environment: _Environment,
) -> None:
    """A GCP instance of the emulator, after the real server behind its data plane (if it has one) is up."""
    if isinstance(settings, OutsideRedisSpec):
        gcp.add(server, _outside_redis(server, settings, folder, cleanup)["connection"])
    elif isinstance(settings, OutsidePostgresSpec):
        connection = _outside_postgres(server, settings, folder, cleanup, environment)["connection"]
        gcp.add(server, connection, password=os.environ[connection["password_env"]])
    else:
        gcp.add(server, None)


def _seed(run: Prepared) -> None:
    """The data the app had written before the fault, through each server's own client."""
    for server in run.scenario.servers:
        seed = server.seed_settings()
        resource = run.inventory.get(server.name)
        connection = resource.connection
        if isinstance(seed, RedisSeed):
            with redis.Redis(host=connection.host, port=connection.port, password=connection.password()) as client:
                for start in range(0, seed.keys, 1000):
                    pipe = client.pipeline(transaction=False)
                    for index in range(start, min(start + 1000, seed.keys)):
                        pipe.set(f"{seed.prefix}{index}", seed_value(seed.prefix, index, seed.value_bytes))
                    pipe.execute()
        elif isinstance(seed, PostgresSeed):
            with psycopg.connect(
                host=connection.host, port=connection.port, user=connection.user or "postgres",
                password=connection.password(), dbname=connection.database or "postgres", autocommit=True,
            ) as conn:  # fmt: skip
                table = sql.Identifier(seed.table)
                conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, body text NOT NULL)").format(table))
                conn.execute(
                    sql.SQL("INSERT INTO {} SELECT n, md5(n::text) FROM generate_series(1, %s) AS n").format(table),
                    (seed.rows,),
                )
                conn.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(table))


@contextmanager
def prepared(scenario: EvalScenario, folder: Path) -> Iterator[Prepared]:
    """The scenario's servers, up, with their inventory; down again (and the faults reset) when the block ends."""
    if problems := scenario_problems(scenario):
        raise HarnessError(f"{scenario.name}: {'; '.join(problems)}")
    folder.mkdir(parents=True, exist_ok=True)
    inventory_path = folder / "opsgraph.yaml"
    state_dir = folder / "state"
    run_id = uuid.uuid4().hex[:8]
    with ExitStack() as cleanup:
        cleanup.callback(forget_kept_clients)  # no socket of this run outlives it
        environment = _Environment()
        cleanup.callback(environment.restore)
        try:
            engine = None
            if any(server.kind == "container" for server in scenario.servers):
                engine = DockerEngine()
                cleanup.callback(engine.stop)
                engine.start()
                environment.set("DOCKER_HOST", engine.host)
            entries: dict[str, dict[str, Any]] = {}
            gcp = GcpInstances()
            for server in scenario.servers:
                settings = server.outside_settings()
                place = folder / "outside" / server.name
                if server.started_by == "gcp-emulator":
                    _add_gcp(gcp, server, settings, place, cleanup, environment)
                    continue
                if isinstance(settings, OutsideRedisSpec):
                    entry = _outside_redis(server, settings, place, cleanup)
                elif isinstance(settings, OutsidePostgresSpec):
                    entry = _outside_postgres(server, settings, place, cleanup, environment)
                elif isinstance(settings, OutsideContainer):
                    assert engine is not None  # started above for any container
                    entry = _container(server, settings, engine, run_id)
                else:
                    entry = _local_entry(server)
                entries[server.name] = _merged(entry, server.inventory) if settings is not None else entry
            if gcp:
                for name, entry in gcp.start(folder / "gcp", cleanup).items():
                    entries[name] = _merged(entry, next(s for s in scenario.servers if s.name == name).inventory)
            resources = [entries[server.name] for server in scenario.servers]
            inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": resources}, sort_keys=False))
            inventory = load_inventory(inventory_path)
            stack = LocalStack(state_dir, inventory)
            cleanup.callback(stack.down)
            stack.up()
            run = Prepared(
                scenario, folder, inventory_path, state_dir, inventory, docker_root=engine.root if engine else None
            )
            _seed(run)
        except (
            OutsideError, LocalStackError, InventoryError, OSError, psycopg.Error, redis.RedisError, DockerException,
        ) as error:  # fmt: skip
            raise HarnessError(f"{scenario.name}: its system did not come up: {error}") from error
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
    try:
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
    except ValidationError as error:
        raise HarnessError(f"{run.scenario.name}: recovery args of {spec.check}: {error}") from None
    return CheckResult(True, f"{result.detail}; held for {spec.settle_s:g} s")
