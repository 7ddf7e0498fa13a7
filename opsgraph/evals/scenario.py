"""An eval scenario as data: which servers, what fault, what a right answer looks like, and how to tell it recovered.

One YAML file per scenario under `evals/scenarios/`. The file says everything an evaluator
needs and nothing about how OpsGraph should fix it: the expected symptom and root-cause
category, the actions expected and forbidden, the outcome (resolved, escalated — a human
must decide — or none: nothing was wrong), and an independent recovery check that is the
scenario's own probe of the system (the app's writes succeed, the data is still there),
never OpsGraph's verifier. Resource ports are never written in a file: every run gets
fresh loopback ports, so scenarios run in isolation and in any order.

A malformed file is refused with its path and the field (`ScenarioError`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "evals" / "scenarios"


class ScenarioError(ValueError):
    """A scenario file that does not load; the message names the file and the field."""


class Outcome(StrEnum):
    """What a right run ends in."""

    RESOLVED = "resolved"  # fixed, and the independent check passes through the settle window
    ESCALATED = "escalated"  # a human must decide (only a destructive fix, unsafe input): no action
    NONE = "none"  # nothing was wrong (a control, a red herring): no incident acted on, no action


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutsideRedis(_Strict):
    """How an outside redis-server is configured (its own redis.conf)."""

    maxmemory_mb: Annotated[int, Field(ge=1)] | None = None  # with maxmemory-policy noeviction
    maxclients: Annotated[int, Field(ge=4)] | None = None
    appendonly: bool = True  # AOF, appendfsync always: a crash loses nothing
    # commands: the inventory declares how its owner starts it (`external.commands.start`).
    lifecycle: Literal["none", "commands"] = "none"


class OutsidePostgres(_Strict):
    """How an outside cluster is configured (its own postgresql.conf and pg_hba.conf)."""

    max_connections: Annotated[int, Field(ge=5)] | None = None
    superuser_reserved_connections: Annotated[int, Field(ge=0)] | None = None
    # The app's ordinary role, trusted from loopback, and its database (owned by it).
    app_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = None
    database: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = None
    lifecycle: Literal["none", "commands"] = "none"

    @model_validator(mode="after")
    def _database_has_an_owner(self) -> OutsidePostgres:
        if self.database is not None and self.app_user is None:
            raise ValueError("database needs app_user, the role that owns it")
        return self


class OutsideContainer(_Strict):
    """A container of the private Docker Engine: which workload, with which limits."""

    # idle: a shell that sleeps; working-set: holds the memory its data needs (WORKING_SET_WORKLOAD).
    workload: Literal["idle", "working-set"] = "idle"
    memory_mb: Annotated[int, Field(ge=6)] | None = None
    restart: Literal["no", "on-failure", "always"] = "no"


class EmulatedCompute(_Strict):
    """A Compute Engine VM of the GCP emulator: its machine type and its (emulated) guest."""

    machine_type: str = "e2-medium"
    memory_used_pct: Annotated[float, Field(ge=0, le=100)] = 35.0
    cpu_used_pct: Annotated[float, Field(ge=0, le=100)] = 10.0
    local_ssd: bool = False


class EmulatedRedis(_Strict):
    """A Memorystore instance of the GCP emulator; its data plane is a real redis-server (`outside`)."""

    tier: Literal["BASIC", "STANDARD_HA"] = "STANDARD_HA"
    memory_size_gb: Annotated[int, Field(ge=1, le=300)] = 1


class EmulatedSql(_Strict):
    """A Cloud SQL for PostgreSQL instance of the GCP emulator; its data plane is a real PostgreSQL (`outside`)."""

    tier: str = Field("db-custom-1-3840", pattern=r"^db-[a-z0-9-]+$")


_OUTSIDE: dict[str, type[OutsideRedis | OutsidePostgres | OutsideContainer]] = {
    "redis": OutsideRedis,
    "postgres": OutsidePostgres,
    "container": OutsideContainer,
    # A GCP instance's data plane: the real server the emulator points the instance's endpoint at.
    "gcp_redis": OutsideRedis,
    "gcp_sql": OutsidePostgres,
}
_EMULATED: dict[str, type[EmulatedCompute | EmulatedRedis | EmulatedSql]] = {
    "gcp_compute": EmulatedCompute,
    "gcp_redis": EmulatedRedis,
    "gcp_sql": EmulatedSql,
}


class RedisSeed(_Strict):
    """Data the app wrote before the fault: `keys` keys named PREFIX<n>, checked by redis_data_intact."""

    keys: Annotated[int, Field(ge=1, le=1_000_000)]
    prefix: str = Field(min_length=1)
    value_bytes: Annotated[int, Field(ge=1, le=65536)] = 64


class PostgresSeed(_Strict):
    """A table of `rows` rows the app wrote before the fault, readable by every role; checked by postgres_query_runs."""

    table: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    rows: Annotated[int, Field(ge=1, le=1_000_000)]


_SEEDS: dict[str, type[RedisSeed | PostgresSeed]] = {
    "redis": RedisSeed,
    "postgres": PostgresSeed,
    "gcp_redis": RedisSeed,  # written to the instance's data plane
    "gcp_sql": PostgresSeed,
}


class ServerSpec(_Strict):
    """One server of the scenario's system, as an inventory entry without its port.

    `started_by: opsgraph` — OpsGraph's local stack starts it (`environment: local`);
    `started_by: outside` — the harness starts it as a user would (its own config file and
    data folder, outside OpsGraph's state), and the inventory declares it `environment: external`;
    a container always runs in the harness's private Docker Engine (`environment: docker`);
    `started_by: gcp-emulator` — a GCP instance of the local GCP emulator (`emulated:`), whose
    data plane (Memorystore, Cloud SQL) is a real server the harness starts (`outside:`).
    """

    name: str = Field(min_length=1)
    kind: Literal["redis", "postgres", "http", "nginx", "container", "gcp_compute", "gcp_redis", "gcp_sql"]
    started_by: Literal["opsgraph", "outside", "gcp-emulator"] = "opsgraph"
    # The rest of the inventory entry (local:, policy:, thresholds:, http:, …) — ports excluded.
    inventory: dict[str, Any] = Field(default_factory=dict)
    # How an outside server is started: the fields of OutsideRedis / OutsidePostgres / OutsideContainer.
    outside: dict[str, Any] = Field(default_factory=dict)
    # Data written before the fault, through the server's own client (RedisSeed / PostgresSeed).
    seed: dict[str, Any] = Field(default_factory=dict)
    # How the GCP emulator holds a GCP instance: the fields of EmulatedCompute / EmulatedRedis / EmulatedSql.
    emulated: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_ports(self) -> ServerSpec:
        if "connection" in self.inventory and "port" in self.inventory["connection"]:
            raise ValueError(f"{self.name}: no port in a scenario; every run gets fresh ports")
        return self

    @model_validator(mode="after")
    def _how_started(self) -> ServerSpec:
        if self.kind == "container" and self.started_by != "outside":
            raise ValueError(f"{self.name}: a container is started by the harness's Docker Engine: started_by: outside")
        if (self.kind in _EMULATED) != (self.started_by == "gcp-emulator"):
            raise ValueError(f"{self.name}: GCP kinds, and only they, are started_by: gcp-emulator")
        if self.emulated and self.kind not in _EMULATED:
            raise ValueError(f"{self.name}: `emulated` is only read for the GCP kinds")
        if self.started_by == "outside" and self.kind not in _OUTSIDE:
            raise ValueError(f"{self.name}: an outside {self.kind} is not supported; outside: {sorted(_OUTSIDE)}")
        if self.outside and (self.started_by == "opsgraph" or self.kind not in _OUTSIDE):
            raise ValueError(f"{self.name}: `outside` is only read with started_by: outside (and for a GCP data plane)")
        if self.seed and self.kind not in _SEEDS:
            raise ValueError(f"{self.name}: a {self.kind} takes no seed; seeds: {sorted(_SEEDS)}")
        readers = {"outside": self.outside_settings, "seed": self.seed_settings, "emulated": self.emulated_settings}
        for section, read in readers.items():
            try:
                read()
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in (section, *first["loc"]))
                raise ValueError(f"{self.name}: {where}: {first['msg']}") from None
        return self

    def outside_settings(self) -> OutsideRedis | OutsidePostgres | OutsideContainer | None:
        """The typed `outside` section of an outside server or a GCP data plane (None for OpsGraph's own)."""
        if self.started_by == "opsgraph" or self.kind not in _OUTSIDE:
            return None
        return _OUTSIDE[self.kind].model_validate(self.outside)

    def emulated_settings(self) -> EmulatedCompute | EmulatedRedis | EmulatedSql | None:
        """The typed `emulated` section of a GCP instance (None for every other server)."""
        if self.kind not in _EMULATED:
            return None
        return _EMULATED[self.kind].model_validate(self.emulated)

    def seed_settings(self) -> RedisSeed | PostgresSeed | None:
        if not self.seed:
            return None
        return _SEEDS[self.kind].model_validate(self.seed)


class Injection(_Strict):
    """One fault: a name from the fault catalogue (`opsgraph.tools.faults.SCENARIOS` or the evals' own)."""

    fault: str = Field(min_length=1)
    resource: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Expectation(_Strict):
    detected: bool = True
    symptom: str | None = None  # the probe's symptom name, e.g. redis_memory_pressure
    root_cause: str | None = None  # a category the diagnosis must name, e.g. "memory", "connections"
    outcome: Outcome = Outcome.RESOLVED
    actions: list[str] = Field(default_factory=list)  # tools that must be among those taken
    forbidden: list[str] = Field(default_factory=list)  # tools that must never run
    # Risks no step may carry in this scenario (e.g. ["destructive"]); checked on what ran.
    forbidden_risks: list[Literal["safe", "disruptive", "destructive"]] = Field(default_factory=list)


class RecoveryCheck(_Strict):
    """The scenario's own probe of recovery, by name from `opsgraph.evals.checks`, with its arguments."""

    check: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    settle_s: Annotated[float, Field(ge=0, le=120)] = 3.0  # it must keep passing this long


class Tags(_Strict):
    difficulty: Literal["easy", "medium", "hard"]
    target: str = Field(min_length=1)  # redis, postgres, nginx, app, container, gcp, several
    # docker: needs dockerd (the harness starts one); gcp: the local GCP emulator (no project needed)
    environment: Literal["local", "outside", "mixed", "docker", "gcp"]
    extra: list[str] = Field(default_factory=list)  # control, red-herring, injection, destructive, variant, …

    def all(self) -> set[str]:
        return {self.difficulty, self.target, self.environment, *self.extra}


class EvalScenario(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = Field(min_length=1)
    tags: Tags
    servers: list[ServerSpec] = Field(min_length=1)
    inject: list[Injection] = Field(default_factory=list)  # empty: a control
    expect: Expectation
    recovery: RecoveryCheck

    @model_validator(mode="after")
    def _consistent(self) -> EvalScenario:
        names = [server.name for server in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"server names repeat: {names}")
        for injection in self.inject:
            if injection.resource not in names:
                raise ValueError(f"inject names {injection.resource!r}, which is not among the servers {names}")
        if not self.inject and self.expect.outcome is not Outcome.NONE:
            raise ValueError("a scenario without a fault must expect outcome none")
        return self


def load_scenario(path: Path) -> EvalScenario:
    try:
        raw = yaml.safe_load(path.read_text())
        scenario = EvalScenario.model_validate(raw)
    except OSError as error:
        raise ScenarioError(f"{path}: cannot read: {error}") from error
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not YAML: {error}") from error
    except ValidationError as error:
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in error.errors())
        raise ScenarioError(f"{path}: {where}") from error
    if scenario.name != path.stem:
        raise ScenarioError(f"{path}: name {scenario.name!r} must match the file name {path.stem!r}")
    return scenario


def load_scenarios(
    folder: Path = SCENARIO_DIR, names: list[str] | None = None, tags: list[str] | None = None
) -> list[EvalScenario]:
    """Every scenario in `folder` (sorted by name), narrowed to `names` and to those carrying all `tags`."""
    scenarios = [load_scenario(path) for path in sorted(folder.glob("*.yaml"))]
    known = {s.name for s in scenarios}
    if names:
        unknown = sorted(set(names) - known)
        if unknown:
            raise ScenarioError(f"unknown scenario(s) {unknown}; known: {', '.join(sorted(known))}")
        scenarios = [s for s in scenarios if s.name in names]
    if tags:
        scenarios = [s for s in scenarios if set(tags) <= s.tags.all()]
    return scenarios
