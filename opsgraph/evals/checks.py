"""Independent recovery checks: the scenario's own probe of whether the system works again.

Each check looks at the system the way its users would — a write to Redis succeeds, the
keys it held are still there, a query runs as the app's role, the app answers 200
through nginx, a container keeps running — through its own client, never through
OpsGraph's probes or verifier, so a verifier that lies cannot make a scenario pass.
A check returns `CheckResult(ok, detail)` and never raises for a server that is down
(that is a failed check, with what went wrong). Its arguments are validated by its own
model (`CHECK_ARGS`); `check_problems` says what is wrong with a scenario's.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import docker
import httpx
import psycopg
import redis
from docker.errors import DockerException
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry
from requests.exceptions import RequestException

from opsgraph.tools.inventory import Inventory, Resource, ResourceKind


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


Check = Callable[[Inventory, Mapping[str, Any]], CheckResult]
_TIMEOUT_S = 3.0


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    resource: str = Field(min_length=1)


_A = TypeVar("_A", bound=BaseModel)


def _parse(model: type[_A], args: Mapping[str, Any]) -> _A:
    return model.model_validate(dict(args))


# ---- Redis


def seed_value(prefix: str, index: int, size: int) -> str:
    """The value of seeded key PREFIX<index>: what the harness writes and redis_data_intact expects back."""
    stem = f"{prefix}{index}:"
    return (stem * (size // len(stem) + 1))[:size]


def _redis(resource: Resource) -> redis.Redis:
    connection = resource.connection
    return redis.Redis(
        host=connection.host,
        port=connection.port,
        password=connection.password(),
        socket_timeout=_TIMEOUT_S,
        socket_connect_timeout=_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),  # redis-py's default backs off for ~3 s before it reports a refusal
    )


class RedisWritesArgs(_Args):
    size_kb: Annotated[int, Field(ge=1, le=65536)] = 64
    # An app's pool: this many new connections at once, each writing.
    connections: Annotated[int, Field(ge=1, le=64)] = 1


def redis_writes_succeed(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """Application writes of `size_kb` to Redis `resource` succeed and read back, on `connections` new connections."""
    parsed = _parse(RedisWritesArgs, args)
    value = b"x" * (1024 * parsed.size_kb)
    try:
        with ExitStack() as stack:
            clients = [stack.enter_context(_redis(inventory.get(parsed.resource))) for _ in range(parsed.connections)]
            for client in clients:
                key = f"eval:check:{uuid.uuid4().hex}"
                client.set(key, value, ex=60)
                if client.get(key) != value:
                    return CheckResult(False, f"a write to {parsed.resource} read back differently")
                client.delete(key)
    except redis.RedisError as error:
        return CheckResult(False, f"write to {parsed.resource} failed: {error}")
    on = f" on each of {parsed.connections} connections" if parsed.connections > 1 else ""
    return CheckResult(True, f"a {parsed.size_kb} KiB write to {parsed.resource} succeeded{on}")


class RedisDataArgs(_Args):
    prefix: str = Field(min_length=1)
    keys: Annotated[int, Field(ge=1)]
    value_bytes: Annotated[int, Field(ge=1, le=65536)] = 64


def redis_data_intact(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """Every seeded key PREFIX0..PREFIX<keys-1> is there with its value (the data survived)."""
    parsed = _parse(RedisDataArgs, args)
    try:
        with _redis(inventory.get(parsed.resource)) as client:
            missing = wrong = 0
            for start in range(0, parsed.keys, 1000):
                indexes = range(start, min(start + 1000, parsed.keys))
                values = client.mget([f"{parsed.prefix}{i}" for i in indexes])
                for index, value in zip(indexes, values, strict=True):
                    if value is None:
                        missing += 1
                    elif value.decode() != seed_value(parsed.prefix, index, parsed.value_bytes):
                        wrong += 1
    except redis.RedisError as error:
        return CheckResult(False, f"cannot read {parsed.resource}: {error}")
    if missing or wrong:
        return CheckResult(
            False, f"of {parsed.keys} keys {parsed.prefix}*, {missing} are missing and {wrong} have other values"
        )
    return CheckResult(True, f"all {parsed.keys} keys {parsed.prefix}* are there with their values")


# ---- PostgreSQL


class PostgresQueryArgs(_Args):
    user: str | None = Field(None, description="the role to log in as (default: local.app_user, else connection.user)")
    database: str | None = None
    # With a table: count its rows (and compare with `rows`); without: SELECT 1.
    table: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    rows: Annotated[int, Field(ge=0)] | None = None
    sessions: Annotated[int, Field(ge=1, le=64)] = 1
    timeout_ms: Annotated[int, Field(ge=100, le=60_000)] = 3000


def postgres_query_runs(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """`sessions` new sessions as the app's role each run a query within `timeout_ms` (and see `rows` rows)."""
    parsed = _parse(PostgresQueryArgs, args)
    resource = inventory.get(parsed.resource)
    connection = resource.connection
    user = parsed.user or resource.local.app_user or connection.user or "postgres"
    query = (
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(parsed.table)) if parsed.table else sql.SQL("SELECT 1")
    )
    counts = []
    try:
        with ExitStack() as stack:
            for _ in range(parsed.sessions):
                conn = stack.enter_context(
                    psycopg.connect(
                        host=connection.host,
                        port=connection.port,
                        user=user,
                        password=connection.password() if user == connection.user else None,
                        dbname=parsed.database or connection.database or "postgres",
                        connect_timeout=max(1, round(_TIMEOUT_S)),
                        application_name="opsgraph-eval-check",
                        options=f"-c statement_timeout={parsed.timeout_ms}",
                        autocommit=True,
                    )
                )
                row = conn.execute(query).fetchone()
                counts.append(int(row[0]) if row else 0)
    except psycopg.Error as error:
        return CheckResult(False, f"a query as {user} on {parsed.resource} failed: {str(error).strip()}")
    if parsed.table and parsed.rows is not None and any(count != parsed.rows for count in counts):
        return CheckResult(False, f"{parsed.table} has {counts[0]} rows, not the {parsed.rows} written")
    what = f"{parsed.table} ({counts[0]} rows)" if parsed.table else "SELECT 1"
    return CheckResult(True, f"{parsed.sessions} session(s) as {user} on {parsed.resource} ran {what}")


# ---- HTTP (the app, nginx)


class HttpArgs(_Args):
    path: str = Field("/", pattern=r"^/")
    # A burst: this many requests at once, each on its own connection; all must answer 200.
    concurrent: Annotated[int, Field(ge=1, le=256)] = 1
    # Sequential requests whose median latency must stay under max_latency_ms.
    samples: Annotated[int, Field(ge=1, le=50)] = 1
    max_latency_ms: Annotated[float, Field(gt=0)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0


def _get(url: str, timeout_s: float) -> tuple[int | str, float]:
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s) as client:  # its own connection
            status: int | str = client.get(url).status_code
    except httpx.HTTPError as error:
        status = f"{type(error).__name__}: {error}"
    return status, 1000 * (time.perf_counter() - started)


def http_ok(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """GET `path` of the resource (the app, or nginx in front of it) answers 200: in a burst, and fast enough."""
    parsed = _parse(HttpArgs, args)
    connection = inventory.get(parsed.resource).connection
    url = f"http://{connection.host}:{connection.port}{parsed.path}"
    with ThreadPoolExecutor(max_workers=parsed.concurrent) as pool:
        burst = list(pool.map(lambda _: _get(url, parsed.timeout_s), range(parsed.concurrent)))
    failed = [status for status, _ in burst if status != 200]
    if failed:
        return CheckResult(False, f"{len(failed)} of {parsed.concurrent} requests to {url} failed; first: {failed[0]}")
    latencies = [latency for _, latency in burst]
    for _ in range(parsed.samples - 1):
        status, latency = _get(url, parsed.timeout_s)
        if status != 200:
            return CheckResult(False, f"a request to {url} failed: {status}")
        latencies.append(latency)
    median = statistics.median(latencies)
    if parsed.max_latency_ms is not None and median > parsed.max_latency_ms:
        return CheckResult(False, f"{url} answers 200, but in {median:.0f} ms (median), over {parsed.max_latency_ms:g}")
    return CheckResult(True, f"{url} answered 200 to {len(latencies)} requests, median {median:.0f} ms")


# ---- containers


class ContainerArgs(_Args):
    # Up at least this long: a container restarted in the meantime (a crash loop) fails.
    min_uptime_s: Annotated[float, Field(ge=0, le=600)] = 0.0


def container_running(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """The resource's container runs (not restarting), and has been up for `min_uptime_s`."""
    parsed = _parse(ContainerArgs, args)
    resource = inventory.get(parsed.resource)
    name = resource.docker.container or resource.name
    try:
        client = docker.from_env(timeout=10)
        try:
            container = client.containers.get(name)
            state = container.attrs["State"]
        finally:
            client.close()
    except (DockerException, RequestException) as error:
        return CheckResult(False, f"cannot inspect container {name}: {error}")
    if not state["Running"] or state["Restarting"]:
        return CheckResult(False, f"container {name} is {state['Status']} (exit code {state['ExitCode']})")
    uptime = time.time() - _docker_time(state["StartedAt"])  # the engine runs on this host: same clock
    if uptime < parsed.min_uptime_s:
        return CheckResult(False, f"container {name} has run only {uptime:.1f} s (restarted?)")
    return CheckResult(True, f"container {name} is running, up {uptime:.1f} s")


def _docker_time(text: str) -> float:
    """Seconds since the epoch of the engine's UTC timestamps (`2026-12-01T16:29:07.422974946Z`)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(f"0.{fraction or 0}")


# ---- a GCP VM (the GCP emulator's own state: no guest runs that a check could log into)


class VmArgs(_Args):
    max_memory_pct: Annotated[float, Field(gt=0, le=100)] = 80.0


def gcp_vm_serving(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """The emulated VM is RUNNING and its guest uses less than `max_memory_pct` of its memory.

    Read from the GCP emulator's own state (its admin route), not through Google's API or
    OpsGraph's probe: the check stays independent of what it checks.
    """
    parsed = _parse(VmArgs, args)
    gcp = inventory.get(parsed.resource).gcp_settings
    url = f"{gcp.api_endpoint}/emulator/compute/{gcp.project}/{gcp.zone}/{gcp.instance_name(parsed.resource)}/guest"
    try:
        reply = httpx.get(url, timeout=_TIMEOUT_S)
        reply.raise_for_status()
        guest = reply.json()
    except (httpx.HTTPError, ValueError) as error:
        return CheckResult(False, f"cannot read the emulated VM {parsed.resource}: {error}")
    if guest["status"] != "RUNNING":
        return CheckResult(False, f"VM {parsed.resource} is {guest['status']}")
    if guest["memory_used_pct"] >= parsed.max_memory_pct:
        return CheckResult(False, f"VM {parsed.resource}'s guest uses {guest['memory_used_pct']:g} % of its memory")
    return CheckResult(True, f"VM {parsed.resource} is RUNNING, guest memory {guest['memory_used_pct']:g} %")


# ---- several


class CheckSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)


class AllOfArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    checks: list[CheckSpec] = Field(min_length=2)


def all_of(inventory: Inventory, args: Mapping[str, Any]) -> CheckResult:
    """Every one of `checks` passes (two faults at once; a fix that must keep the data too)."""
    parsed = _parse(AllOfArgs, args)
    details = []
    for spec in parsed.checks:
        result = CHECKS[spec.check](inventory, spec.args)
        if not result.ok:
            return CheckResult(False, f"{spec.check}: {result.detail}")
        details.append(result.detail)
    return CheckResult(True, "; ".join(details))


CHECKS: dict[str, Check] = {
    "redis_writes_succeed": redis_writes_succeed,
    "redis_data_intact": redis_data_intact,
    "postgres_query_runs": postgres_query_runs,
    "http_ok": http_ok,
    "container_running": container_running,
    "gcp_vm_serving": gcp_vm_serving,
    "all_of": all_of,
}
CHECK_ARGS: dict[str, type[BaseModel]] = {
    "redis_writes_succeed": RedisWritesArgs,
    "redis_data_intact": RedisDataArgs,
    "postgres_query_runs": PostgresQueryArgs,
    "http_ok": HttpArgs,
    "container_running": ContainerArgs,
    "gcp_vm_serving": VmArgs,
    "all_of": AllOfArgs,
}
# What each check's `resource` must be.
_KINDS = {
    # A Memorystore / Cloud SQL instance is checked on its data plane, its inventory `connection`.
    "redis_writes_succeed": {ResourceKind.REDIS, ResourceKind.GCP_REDIS},
    "redis_data_intact": {ResourceKind.REDIS, ResourceKind.GCP_REDIS},
    "postgres_query_runs": {ResourceKind.POSTGRES, ResourceKind.GCP_SQL},
    "http_ok": {ResourceKind.HTTP, ResourceKind.NGINX},
    "container_running": {ResourceKind.CONTAINER},
    "gcp_vm_serving": {ResourceKind.GCP_COMPUTE},
}


def check_problems(check: str, args: Mapping[str, Any], kinds: Mapping[str, str]) -> list[str]:
    """What is wrong with a check as a scenario names it: unknown, bad arguments, or a resource it cannot read.

    `kinds` maps the scenario's server names to their kinds.
    """
    if check not in CHECKS:
        return [f"unknown check {check!r}; known: {', '.join(sorted(CHECKS))}"]
    try:
        parsed = CHECK_ARGS[check].model_validate(dict(args))
    except ValidationError as error:
        return [f"{check}: {'.'.join(map(str, e['loc'])) or '(args)'}: {e['msg']}" for e in error.errors()]
    if isinstance(parsed, AllOfArgs):
        return [problem for spec in parsed.checks for problem in check_problems(spec.check, spec.args, kinds)]
    resource = str(args["resource"])
    if resource not in kinds:
        return [f"{check}: resource {resource!r} is not among the servers {sorted(kinds)}"]
    if kinds[resource] not in {kind.value for kind in _KINDS[check]}:
        return [f"{check}: {resource} is a {kinds[resource]}, not a {'/'.join(sorted(k.value for k in _KINDS[check]))}"]
    return []
