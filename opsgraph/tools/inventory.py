"""The inventory (`opsgraph.yaml`): which resources OpsGraph watches and how to reach them.

Parsed with Pydantic so that a malformed file is rejected with the path of the
offending field (``resources[0].connection.port: ...``) instead of failing later
inside a probe or, worse, inside a fix. Values are read strictly: a number is finite
(a `.nan` threshold would turn detection off), a port or a count is a real integer
(YAML's `true` is not port 1), and a key given twice is an error, not "the last wins".
"""

from __future__ import annotations

import os
import re
import shutil
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from opsgraph.tools.redaction import register_secret_variables
from opsgraph.tools.risk import Risk


class InventoryError(ValueError):
    """The inventory file is missing, unreadable or does not match the schema."""


class ResourceKind(StrEnum):
    REDIS = "redis"
    POSTGRES = "postgres"
    NGINX = "nginx"
    HTTP = "http"  # an HTTP service judged by its health endpoint (e.g. the sample app)
    CONTAINER = "container"  # a container judged by its state (running, restarts, OOM kills, memory)
    GCP_COMPUTE = "gcp_compute"  # a Compute Engine VM instance
    GCP_SQL = "gcp_sql"  # a Cloud SQL for PostgreSQL instance
    GCP_REDIS = "gcp_redis"  # a Memorystore for Redis instance

    @property
    def on_gcp(self) -> bool:
        """Whether this kind is a GCP managed resource, reached through Google's APIs."""
        return self in _GCP_KINDS


_GCP_KINDS = frozenset({ResourceKind.GCP_COMPUTE, ResourceKind.GCP_SQL, ResourceKind.GCP_REDIS})


class Environment(StrEnum):
    LOCAL = "local"  # servers OpsGraph started itself, in its state folder
    EXTERNAL = "external"  # servers someone else started and runs (systemd, a script, by hand)
    DOCKER = "docker"
    GCP = "gcp"


# Caps on what one inventory may hold: one process watches a few hundred resources, and a
# runaway file (a generator gone wrong) must fail fast rather than take a minute and a GiB.
MAX_RESOURCES = 10_000
MAX_INVENTORY_BYTES = 4 * 1024 * 1024

# PostgreSQL's bootstrap superuser; roles named pg_* are reserved by PostgreSQL itself.
_SUPERUSER = "postgres"


class _Strict(BaseModel):
    """Unknown keys are typos until proven otherwise: reject them. NaN and infinity too."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Connection(_Strict):
    host: str = "127.0.0.1"
    # 0 = none: only a container resource may go without a port.
    port: Annotated[StrictInt, Field(ge=0, le=65535)] = 0
    user: str | None = None
    database: str | None = None
    # Secrets are never written in the inventory: it names the variable that holds them.
    password_env: str | None = None

    def password(self) -> str | None:
        """The secret, read from the environment at the moment it is needed."""
        return os.environ.get(self.password_env) if self.password_env else None


class Band(_Strict):
    """A metric is DEGRADED at or above `degraded` and FAILED at or above `failed`."""

    degraded: StrictFloat
    failed: StrictFloat

    @model_validator(mode="after")
    def _ordered(self) -> Band:
        if self.failed < self.degraded:
            raise ValueError(f"failed ({self.failed}) must be >= degraded ({self.degraded})")
        return self


class Thresholds(_Strict):
    memory_used_pct: Band = Band(degraded=85, failed=95)
    cpu_used_pct: Band = Band(degraded=85, failed=95)  # GCP: Compute Engine and Cloud SQL CPU utilisation
    storage_used_pct: Band = Band(degraded=85, failed=95)  # GCP: Cloud SQL disk utilisation
    clients_used_pct: Band = Band(degraded=80, failed=95)
    connections_used_pct: Band = Band(degraded=80, failed=95)
    blocked_queries: Band = Band(degraded=1, failed=5)
    latency_ms: Band = Band(degraded=500, failed=2000)
    error_rate_pct: Band = Band(degraded=10, failed=50)


class HttpSettings(_Strict):
    """How an `http` resource is probed."""

    health_path: Annotated[str, Field(pattern=r"^/")] = "/health"
    samples: Annotated[StrictInt, Field(ge=1, le=50)] = 5


class LocalSettings(_Strict):
    """How the local environment starts this resource (ignored elsewhere)."""

    maxmemory_mb: Annotated[StrictInt, Field(ge=1)] = 64
    max_connections: Annotated[StrictInt, Field(ge=5)] = 100
    # Links between local resources, by inventory name:
    app_database: str | None = Field(None, description="http (sample app): its postgres resource")
    app_cache: str | None = Field(None, description="http (sample app): its redis resource")
    upstream: str | None = Field(None, description="nginx: the http resource it proxies to")
    worker_connections: Annotated[StrictInt, Field(ge=8)] = 256
    app_user: Annotated[str | None, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = Field(
        None, description="postgres: the non-superuser role local apps log in as; owns connection.database"
    )

    @field_validator("app_user")
    @classmethod
    def _not_a_superuser(cls, role: str | None) -> str | None:
        """OpsGraph never terminates a superuser's sessions: an app logged in as one leaks unfixably."""
        if role == _SUPERUSER or (role or "").startswith("pg_"):
            raise ValueError(
                f"{role!r} is a PostgreSQL superuser or reserved role; the app must log in as an ordinary "
                "role, because OpsGraph never terminates a superuser's sessions"
            )
        return role


class DockerSettings(_Strict):
    """Where a resource lives in Docker (environment: docker)."""

    container: str | None = Field(None, description="Container name or id")
    service_label: str | None = Field(
        None, description="Label value of `opsgraph.service` shared by the replicas of a scalable service"
    )


def _executable(argv0: str) -> str:
    """An argv[0] that exists now: an executable path, or a name found on PATH."""
    if "/" in argv0:
        if not (os.path.isfile(argv0) and os.access(argv0, os.X_OK)):
            raise ValueError(f"{argv0!r} is not an executable file")
        return argv0
    if shutil.which(argv0) is None:
        raise ValueError(f"{argv0!r} was not found on PATH; give its absolute path or install it")
    return argv0


Argv = Annotated[list[str], Field(min_length=1)]


class LifecycleCommands(_Strict):
    """How each lifecycle operation is done, as argv lists (never a shell string).

    Each runs with the operation's timeout; a non-zero exit status is a failure. `restart`
    is used when given, else `stop` (when the server answers) then `start`.
    """

    start: Argv | None = None
    stop: Argv | None = None
    restart: Argv | None = None
    reload: Argv | None = Field(None, description="Re-read the config without dropping the server's state")
    status: Argv | None = Field(None, description="Exit status 0 when the server runs")

    @model_validator(mode="after")
    def _binaries_exist(self) -> LifecycleCommands:
        for operation, argv in self.declared().items():
            try:
                _executable(argv[0])
            except ValueError as error:
                raise ValueError(f"{operation}: {error}") from None
        return self

    def declared(self) -> dict[str, list[str]]:
        return {name: argv for name, argv in self.model_dump().items() if argv is not None}


class SystemdUnit(_Strict):
    """A systemd unit: renders to `systemctl start|stop|restart|reload|is-active UNIT`."""

    # No leading "-": a unit name must never be read as a systemctl option.
    unit: Annotated[str, Field(pattern=r"^[A-Za-z0-9:_.@][A-Za-z0-9:_.@\\-]*$")]

    @model_validator(mode="after")
    def _systemctl_exists(self) -> SystemdUnit:
        _executable("systemctl")
        return self

    def commands(self) -> LifecycleCommands:
        def verb(name: str) -> list[str]:
            return ["systemctl", name, self.unit]

        return LifecycleCommands(
            start=verb("start"),
            stop=verb("stop"),
            restart=verb("restart"),
            reload=verb("reload"),
            status=["systemctl", "is-active", "--quiet", self.unit],
        )


class ServerPaths(_Strict):
    """Where an external server keeps what the tools read (absolute paths)."""

    config_file: Path | None = Field(None, description="nginx.conf, redis.conf, postgresql.conf")
    data_dir: Path | None = Field(None, description="Redis `dir`, PostgreSQL data directory")
    log_files: list[Path] = Field([], description="Logs that process_logs and diagnoses read")
    pid_file: Path | None = None

    @model_validator(mode="after")
    def _absolute(self) -> ServerPaths:
        for path in [self.config_file, self.data_dir, self.pid_file, *self.log_files]:
            if path is not None and not path.is_absolute():
                raise ValueError(f"{path} is not an absolute path")
        return self


class ExternalSettings(_Strict):
    """A server OpsGraph did not start: how (and whether) its lifecycle is operated.

    `lifecycle: none` (the default) leaves only the data-plane tools (INFO, CONFIG SET,
    terminating sessions, stub_status); restarts are refused with a reason. `commands`
    runs the declared argv lists; `systemd` renders them from a unit name.
    """

    lifecycle: Literal["none", "commands", "systemd"] = "none"
    commands: LifecycleCommands | None = None
    systemd: SystemdUnit | None = None
    timeout_s: Annotated[StrictFloat, Field(gt=0, le=600)] = 60.0
    paths: ServerPaths = ServerPaths()

    @model_validator(mode="after")
    def _lifecycle_described(self) -> ExternalSettings:
        if self.lifecycle == "commands" and (self.commands is None or not self.commands.declared()):
            raise ValueError("lifecycle: commands needs `commands` with at least one of start, stop, restart, reload")
        if self.lifecycle == "systemd" and self.systemd is None:
            raise ValueError("lifecycle: systemd needs `systemd: {unit: NAME}`")
        if self.lifecycle != "commands" and self.commands is not None:
            raise ValueError(f"`commands` is only read with lifecycle: commands (this says {self.lifecycle})")
        if self.lifecycle != "systemd" and self.systemd is not None:
            raise ValueError(f"`systemd` is only read with lifecycle: systemd (this says {self.lifecycle})")
        return self

    def lifecycle_commands(self) -> LifecycleCommands:
        """The argv lists for each operation (empty when OpsGraph may not operate the server)."""
        if self.systemd is not None:
            return self.systemd.commands()
        return self.commands or LifecycleCommands()


_GCP_NAME = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"  # instance names (Compute Engine, Cloud SQL, Memorystore)


class GcpSettings(_Strict):
    """Where a GCP resource is (project, zone or region, instance) and how OpsGraph authenticates.

    Credentials are a service-account key file or, when none is named, Application Default
    Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, or the metadata server);
    google-auth refreshes the access token itself. The key is read only by google-auth: it is
    never logged, checkpointed or shown to a model. `api_endpoint` and `monitoring_endpoint`
    are for a private endpoint or the local GCP emulator; real projects leave them unset.
    """

    project: Annotated[str, Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$", description="GCP project id")]
    zone: Annotated[str | None, Field(pattern=r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")] = Field(
        None, description="gcp_compute: the instance's zone, e.g. us-central1-a"
    )
    region: Annotated[str | None, Field(pattern=r"^[a-z]+-[a-z]+[0-9]+$")] = Field(
        None, description="gcp_redis (required) and gcp_sql: the instance's region, e.g. us-central1"
    )
    instance: Annotated[str | None, Field(pattern=_GCP_NAME)] = Field(
        None, description="The instance name in GCP; defaults to the resource's name"
    )
    credentials_file: Path | None = Field(
        None, description="A service-account JSON key file; unset: Application Default Credentials"
    )
    api_endpoint: Annotated[str | None, Field(pattern=r"^https?://[^/\s]+$")] = Field(
        None, description="Base URL of the REST APIs (compute, redis, sqladmin); unset: Google's"
    )
    monitoring_endpoint: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")] = Field(
        None, description="host:port of the Cloud Monitoring gRPC API; unset: Google's"
    )
    operation_timeout_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = Field(
        600.0, description="How long a tool waits for a long-running operation to finish"
    )

    @field_validator("credentials_file")
    @classmethod
    def _absolute_key_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_absolute():
            raise ValueError(f"{path} is not an absolute path")
        return path

    def instance_name(self, resource_name: str) -> str:
        return self.instance or resource_name


class ResourcePolicy(_Strict):
    """Hard limits that hold whatever the approval setting and whoever approves."""

    max_risk: Risk = Risk.DISRUPTIVE
    max_memory_mb: Annotated[StrictInt, Field(ge=1)] = 1024
    max_connections: Annotated[StrictInt, Field(ge=10)] = 1000  # postgres max_connections / redis maxclients ceiling
    # nginx: worker_connections ceiling (each costs a file descriptor and memory in every
    # worker, and a proxied request needs two).
    max_worker_connections: Annotated[StrictInt, Field(ge=16)] = 4096
    # Tools that never run on this resource, whatever their risk and whoever approves
    # (e.g. `redis_flush` on a cache that holds the only copy of its keys).
    deny_tools: list[str] = []
    # GCP ceilings: the machine types a Compute Engine instance may be resized to and the tiers a
    # Cloud SQL instance may be scaled to. Empty: no resize / no tier change at all.
    machine_types: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]] = []
    sql_tiers: list[Annotated[str, Field(pattern=r"^db-[a-z0-9-]{1,60}$")]] = []

    @field_validator("deny_tools")
    @classmethod
    def _known_tools(cls, names: list[str]) -> list[str]:
        """A misspelt name would deny nothing: every name must be a catalogue tool."""
        # Imported when an inventory is read, not at import: the catalogue's tools are built on this module.
        from opsgraph.tools.catalogue import CATALOGUE

        unknown = sorted(set(names) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; the catalogue has: {', '.join(sorted(CATALOGUE))}")
        return names


class Resource(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
    kind: ResourceKind
    environment: Environment = Environment.LOCAL
    connection: Connection = Connection()
    thresholds: Thresholds = Thresholds()
    local: LocalSettings = LocalSettings()
    policy: ResourcePolicy = ResourcePolicy()
    http: HttpSettings = HttpSettings()
    docker: DockerSettings = DockerSettings()
    external: ExternalSettings = ExternalSettings()
    gcp: GcpSettings | None = None
    # How far OpsGraph may act on its own here; only ever tightens the global approval setting
    # (read-only: nothing mutating runs, review: every mutating step asks, autonomous: as global).
    mode: Literal["read-only", "review", "autonomous"] | None = None
    # Resources this one needs: while one of them is failing or has an open incident, this one
    # opens no incident of its own (it is grouped under the root's). The `local` links count too.
    depends_on: list[str] = []

    def dependencies(self) -> list[str]:
        """The resources this one needs directly: `depends_on` plus the local app/upstream links."""
        links = [self.local.app_database, self.local.app_cache, self.local.upstream]
        return [*self.depends_on, *(name for name in links if name is not None and name not in self.depends_on)]

    @model_validator(mode="after")
    def _external_only_when_external(self) -> Resource:
        if self.external != ExternalSettings() and self.environment is not Environment.EXTERNAL:
            raise ValueError(f"the `external` section applies to environment: external, not {self.environment}")
        return self

    @model_validator(mode="after")
    def _gcp_kinds_live_on_gcp(self) -> Resource:
        """A GCP kind needs environment: gcp and a `gcp` section; nothing else may claim either."""
        on_gcp = self.kind.on_gcp
        if on_gcp != (self.environment is Environment.GCP):
            raise ValueError(
                f"kind {self.kind} needs environment: gcp"
                if on_gcp
                else f"environment: gcp holds the kinds gcp_compute, gcp_sql and gcp_redis, not {self.kind}"
            )
        if on_gcp != (self.gcp is not None):
            raise ValueError(
                f"kind {self.kind} needs a `gcp` section (project, zone or region)"
                if on_gcp
                else f"the `gcp` section applies to the GCP kinds, not {self.kind}"
            )
        if self.gcp is not None:
            if self.kind is ResourceKind.GCP_COMPUTE and self.gcp.zone is None:
                raise ValueError("gcp_compute needs gcp.zone (e.g. us-central1-a)")
            if self.kind is ResourceKind.GCP_REDIS and self.gcp.region is None:
                raise ValueError("gcp_redis needs gcp.region (e.g. us-central1)")
            if self.kind is not ResourceKind.GCP_COMPUTE and self.gcp.zone is not None:
                raise ValueError(f"gcp.zone applies to gcp_compute; {self.kind} has gcp.region")
        return self

    @property
    def gcp_settings(self) -> GcpSettings:
        """The `gcp` section of a GCP resource (the validator guarantees it is there)."""
        if self.gcp is None:
            raise ValueError(f"resource {self.name!r} ({self.kind}) is not a GCP resource")
        return self.gcp

    @model_validator(mode="after")
    def _app_role_is_not_opsgraphs(self) -> Resource:
        """OpsGraph connects as `connection.user`, a superuser by design (ALTER SYSTEM, reserved slots)."""
        if self.local.app_user is not None and self.local.app_user == self.connection.user:
            raise ValueError(
                f"local.app_user {self.local.app_user!r} is the role OpsGraph connects as (connection.user), "
                "a superuser by design; the app needs an ordinary role of its own, because OpsGraph never "
                "terminates a superuser's sessions"
            )
        return self

    @property
    def managed_by_opsgraph(self) -> bool:
        """Whether OpsGraph started this server (and so may create its data): local only."""
        return self.environment is Environment.LOCAL


class McpServer(_Strict):
    """An extra MCP server whose tools the reasoning backends may read from.

    Its tools are evidence only: the executor runs nothing that the OpsGraph catalogue
    does not declare, so a plan can never contain them.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$")]
    transport: Literal["stdio", "streamable_http"]
    command: str | None = None
    args: list[str] = []
    url: str | None = None

    @model_validator(mode="after")
    def _endpoint(self) -> McpServer:
        if self.name == "opsgraph":
            raise ValueError("the MCP server name 'opsgraph' is reserved for OpsGraph's own catalogue")
        if self.transport == "stdio" and not self.command:
            raise ValueError("a stdio MCP server needs `command`")
        if self.transport == "streamable_http" and not self.url:
            raise ValueError("a streamable_http MCP server needs `url`")
        return self


class AlertRoute(_Strict):
    """Which resource an incoming alert is about: every `match` label equal, every `match_re` label
    matching its regex in full; then `resource` names it, or `resource_label` says which label does."""

    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    resource: str | None = None
    resource_label: str | None = None

    @field_validator("match_re")
    @classmethod
    def _regexes_compile(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"match_re.{label}: {pattern!r} is not a regular expression ({error})") from None
        return patterns

    @model_validator(mode="after")
    def _names_one_resource(self) -> AlertRoute:
        if (self.resource is None) == (self.resource_label is None):
            raise ValueError("an alert route needs exactly one of `resource` or `resource_label`")
        if not self.match and not self.match_re and self.resource is not None:
            raise ValueError("an alert route naming `resource` needs `match` or `match_re` (else every alert is it)")
        return self

    def resource_for(self, labels: dict[str, str]) -> str | None:
        """The resource this route gives for an alert with `labels`, or None when it does not match."""
        if any(labels.get(label) != value for label, value in self.match.items()):
            return None
        if any(re.fullmatch(pattern, labels.get(label, "")) is None for label, pattern in self.match_re.items()):
            return None
        return self.resource if self.resource is not None else labels.get(self.resource_label or "")


# Without a route that matches, an alert is about the resource its `resource` label names.
DEFAULT_RESOURCE_LABEL = "resource"


class Inventory(_Strict):
    version: Literal[1] = 1
    resources: Annotated[list[Resource], Field(max_length=MAX_RESOURCES)]
    mcp_servers: list[McpServer] = []
    # Incoming alerts (Alertmanager, webhooks) to resources; the first route that matches wins.
    alert_routes: list[AlertRoute] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_an_integer(cls, value: object) -> object:
        if type(value) is not int:  # Literal[1] alone takes YAML's `true` (and 1.0) for 1
            raise ValueError(f"version must be the integer 1, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Inventory:
        seen: set[str] = set()
        for resource in self.resources:
            if resource.name in seen:
                raise ValueError(f"resource name {resource.name!r} appears twice")
            seen.add(resource.name)
        return self

    @model_validator(mode="after")
    def _ports_given(self) -> Inventory:
        for index, resource in enumerate(self.resources):
            if resource.kind is ResourceKind.CONTAINER and resource.environment is not Environment.DOCKER:
                raise ValueError(
                    f"resources[{index}] ({resource.name}): a container resource needs environment: docker"
                )
            # A GCP resource is found through its API; its data plane (Memorystore's endpoint) may come from there too.
            portless = resource.kind is ResourceKind.CONTAINER or resource.kind.on_gcp
            if not portless and resource.connection.port == 0:
                raise ValueError(
                    f"resources[{index}] ({resource.name}): connection.port is required for {resource.kind}"
                )
        return self

    @model_validator(mode="after")
    def _links_resolve(self) -> Inventory:
        kinds = {resource.name: resource.kind for resource in self.resources}
        wanted = {"app_database": ResourceKind.POSTGRES, "app_cache": ResourceKind.REDIS, "upstream": ResourceKind.HTTP}
        for resource in self.resources:
            for field_name, kind in wanted.items():
                target = getattr(resource.local, field_name)
                if target is not None and kinds.get(target) is not kind:
                    raise ValueError(
                        f"resource {resource.name!r}: local.{field_name} must name a {kind} resource "
                        f"of this inventory, got {target!r}"
                    )
            for name in resource.depends_on:
                if name not in kinds or name == resource.name:
                    raise ValueError(f"resource {resource.name!r}: depends_on names {name!r}, not another resource")
        for number, route in enumerate(self.alert_routes, start=1):
            if route.resource is not None and route.resource not in kinds:
                raise ValueError(f"alert_routes[{number}]: resource {route.resource!r} is not in the inventory")
        return self

    @model_validator(mode="after")
    def _apps_have_their_own_role(self) -> Inventory:
        """Without `app_user`, the local sample app logs in as the database's connection.user or postgres."""
        for resource in self.resources:
            database = resource.local.app_database
            if resource.environment is not Environment.LOCAL or database is None:
                continue
            if self.get(database).local.app_user is None:
                raise ValueError(
                    f"resource {resource.name!r} runs an app on {database!r}, which has no local.app_user: "
                    "the app would share OpsGraph's superuser role (its connection.user, else postgres), "
                    "whose sessions OpsGraph never terminates"
                )
        return self

    def get(self, name: str) -> Resource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise KeyError(f"no resource named {name!r} in the inventory")

    def resource_for_alert(self, labels: dict[str, str]) -> tuple[str | None, str]:
        """The inventory resource an alert with these labels is about, and how that was decided (or why none)."""
        for number, route in enumerate(self.alert_routes, start=1):
            name = route.resource_for(labels)
            if name is None:
                continue
            if not self.has(name):
                return None, f"alert_routes[{number}] names {name!r}, which is not in the inventory"
            return name, f"alert_routes[{number}]"
        name = labels.get(DEFAULT_RESOURCE_LABEL)
        if name is None:
            return None, f"no alert route matches its labels and it has no {DEFAULT_RESOURCE_LABEL!r} label"
        if not self.has(name):
            return None, f"its {DEFAULT_RESOURCE_LABEL!r} label names {name!r}, which is not in the inventory"
        return name, f"its {DEFAULT_RESOURCE_LABEL!r} label"

    def has(self, name: str) -> bool:
        return any(resource.name == name for resource in self.resources)


# A file that is wrong everywhere gets a short list, not a screenful per resource.
_MAX_ERRORS_SHOWN = 20


def _format_errors(error: ValidationError) -> str:
    lines = []
    items = error.errors()
    for item in items[:_MAX_ERRORS_SHOWN]:
        where = ""
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        lines.append(f"  {where or '(top level)'}: {item['msg']}")
    if len(items) > _MAX_ERRORS_SHOWN:
        lines.append(f"  ... and {len(items) - _MAX_ERRORS_SHOWN} more")
    return "\n".join(lines)


def parse_inventory(data: object, source: str = "<inventory>") -> Inventory:
    """Validate already-loaded YAML/JSON data; errors name the file and the field.

    Every inventory OpsGraph reads comes through here, so this is where its `password_env`
    variables join the secrets that every output is redacted of.
    """
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as error:
        raise InventoryError(f"{source} is not a valid inventory:\n{_format_errors(error)}") from None
    register_secret_variables(resource.connection.password_env for resource in inventory.resources)
    return inventory


class _UniqueKeyLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last value, so a second `thresholds:` written further down
    silently replaces the first. Merge keys (`<<: *anchor`) may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} appears twice (first on line {first_line[key]})", key_node.start_mark
                    )
                first_line[key] = line
            except TypeError:
                pass  # an unhashable key: the base class reports it
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error as one line: where (line, column) and what."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    return " ".join(str(error).split())


def _read_text(path: Path) -> str:
    """The file as text, refusing what cannot be an inventory: too big, or not UTF-8."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_INVENTORY_BYTES + 1)
    except OSError as error:
        raise InventoryError(f"cannot read inventory {path}: {error.strerror}") from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"{path} is larger than the inventory size cap of {MAX_INVENTORY_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InventoryError(
            f"{path} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}): not an inventory file"
        ) from None


def load_inventory(path: Path) -> Inventory:
    """Read and validate an inventory file."""
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise InventoryError(f"{path} is not valid YAML: {_yaml_problem(error)}") from None
    return parse_inventory(data, str(path))
