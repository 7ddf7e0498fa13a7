"""Emulated Cloud SQL Admin v1beta4 (`/sql/v1beta4/projects/{p}/…`) in front of real PostgreSQL servers.

get, list, patch (settings.tier, settings.databaseFlags) and restart, each an
sql#operation. The emulator plays the control plane only: a restart does NOT restart
the backing server process (it is the caller's, with its data); when the RESTART
operation is DONE the emulator terminates the server's non-superuser client backends
(pg_terminate_backend), which is what a restart does to the clients. A patch records
the new tier and flags on the emulated instance; it does not ALTER the backing server
(max_connections, the flag that matters, would need that real restart). The
instance's max_connections flag is read from the backing server at start.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from opsgraph.gcp_emulator.config import SqlInstanceSpec
from opsgraph.gcp_emulator.errors import ApiError, BackendError
from opsgraph.gcp_emulator.gate import Call, Route
from opsgraph.gcp_emulator.metrics import Series
from opsgraph.gcp_emulator.operations import Operation, OperationBook, rfc3339, utc_now

_INSTANCE = "/sql/v1beta4/projects/{project}/instances/{instance}"
_RESOURCE = "projects/{project}/instances/{instance}"
_PATCHABLE_SETTINGS = {"tier", "databaseFlags", "settingsVersion", "kind"}
_CLIENT_BACKENDS = "FROM pg_stat_activity a WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()"


@dataclass
class _Database:
    spec: SqlInstanceSpec
    tier: str
    flags: list[dict[str, str]]
    state: str
    settings_version: int
    created: str
    cpu_utilization: float
    disk_utilization: float


class CloudSql:
    """The Cloud SQL instances of one project, each in front of its real PostgreSQL."""

    def __init__(self, project: str, specs: list[SqlInstanceSpec], lock: threading.RLock, delay_s: float) -> None:
        self.project = project
        self.base_url = ""  # set once the REST server is bound
        self._lock = lock
        self._book = OperationBook(lock, delay_s)
        created = rfc3339(utc_now())
        self._databases = {
            spec.name: _Database(
                spec=spec, tier=spec.tier, flags=[], state="RUNNABLE", settings_version=1, created=created,
                cpu_utilization=spec.cpu_utilization, disk_utilization=spec.disk_utilization,
            )
            for spec in specs
        }  # fmt: skip

    def start(self) -> None:
        """Read max_connections from each backing server; BackendError if one cannot be reached."""
        for database in self._databases.values():
            try:
                with self._connect(database.spec) as conn:
                    row = conn.execute("SHOW max_connections").fetchone()
            except psycopg.Error as error:
                raise BackendError(f"reading max_connections of {database.spec.name!r} failed: {error}") from error
            assert row is not None
            database.flags = [{"name": "max_connections", "value": str(row[0])}]

    def close(self) -> None:
        self._book.close()

    def routes(self) -> list[Route]:
        return [
            Route("GET", _INSTANCE, "sql.instances.get", "cloudsql.instances.get", _RESOURCE, self._get),
            Route("GET", "/sql/v1beta4/projects/{project}/instances", "sql.instances.list", "cloudsql.instances.list",
                  "projects/{project}", self._list),
            Route("PATCH", _INSTANCE, "sql.instances.patch", "cloudsql.instances.update", _RESOURCE, self._patch),
            Route("POST", _INSTANCE + "/restart", "sql.instances.restart", "cloudsql.instances.restart", _RESOURCE,
                  self._restart),
            Route("GET", "/sql/v1beta4/projects/{project}/operations/{operation}", "sql.operations.get",
                  "cloudsql.instances.get", "projects/{project}/operations/{operation}", self._get_operation),
        ]  # fmt: skip

    def instance(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            self._book.settle()
            database = self._databases.get(name)
            return None if database is None else self._render(database)

    def set_metrics(self, name: str, cpu_utilization: float | None, disk_utilization: float | None) -> None:
        """The emulated constants behind database/cpu/utilization and database/disk/utilization (0..1)."""
        for value in (cpu_utilization, disk_utilization):
            if value is not None and not 0 <= value <= 1:
                raise ValueError("utilizations are fractions, 0..1")
        with self._lock:
            database = self._databases.get(name)
            if database is None:
                raise KeyError(name)
            if cpu_utilization is not None:
                database.cpu_utilization = cpu_utilization
            if disk_utilization is not None:
                database.disk_utilization = disk_utilization

    def series(self, metric_type: str) -> list[Series]:
        """num_backends live from each backing server (one series per database, as Cloud SQL reports it);
        cpu and disk utilization are the emulated constants."""
        found: list[Series] = []
        for database in list(self._databases.values()):
            labels = {
                "project_id": self.project,
                "database_id": f"{self.project}:{database.spec.name}",
                "region": database.spec.region,
            }
            if metric_type == "cloudsql.googleapis.com/database/postgresql/num_backends":
                try:
                    counts = self._backends_per_database(database.spec)
                except BackendError:
                    continue  # a server that does not answer reports no point
                found += [
                    Series(metric_type, {"database": name}, "cloudsql_database", labels, count, "INT64")
                    for name, count in counts.items()
                ]
            elif metric_type == "cloudsql.googleapis.com/database/cpu/utilization":
                found.append(Series(metric_type, {}, "cloudsql_database", labels, database.cpu_utilization))
            elif metric_type == "cloudsql.googleapis.com/database/disk/utilization":
                found.append(Series(metric_type, {}, "cloudsql_database", labels, database.disk_utilization))
        return found

    # ---- handlers (called under the lock)

    def _database(self, params: dict[str, str]) -> _Database:
        database = self._databases.get(params["instance"]) if params["project"] == self.project else None
        if database is None:
            raise ApiError(
                404,
                "The Cloud SQL instance does not exist.",
                legacy_reason="instanceDoesNotExist",
                reason="RESOURCE_NOT_FOUND",
                metadata={"resource": _RESOURCE.format(**params)},
            )
        return database

    def _get(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        return self._render(self._database(call.params))

    def _list(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        return {"kind": "sql#instancesList", "items": [self._render(db) for _, db in sorted(self._databases.items())]}

    def _patch(self, call: Call) -> dict[str, Any]:
        database = self._idle_database(call)
        settings = call.body.get("settings") or {}
        if not isinstance(settings, dict) or not settings:
            raise ApiError(400, "Invalid request: the emulator patches settings.tier and settings.databaseFlags only.")
        unsupported = sorted(set(settings) - _PATCHABLE_SETTINGS)
        if unsupported:
            raise ApiError(400, f"Invalid request: settings {', '.join(unsupported)} cannot be patched in the "
                                "emulator (only settings.tier and settings.databaseFlags).")  # fmt: skip
        version = settings.get("settingsVersion")
        if version is not None and str(version) != str(database.settings_version):
            raise ApiError(412, "Precondition check failed.", legacy_reason="conditionNotMet")
        tier = settings.get("tier", database.tier)
        flags = settings.get("databaseFlags", database.flags)
        if not isinstance(tier, str) or not tier.startswith("db-"):
            raise ApiError(400, f"Invalid request: Invalid tier {tier!r}.", legacy_reason="invalidTier")
        if not isinstance(flags, list) or not all(isinstance(flag, dict) and "name" in flag for flag in flags):
            raise ApiError(400, "Invalid request: databaseFlags must be a list of {name, value}.")

        def done() -> None:
            database.tier = tier
            database.flags = [{"name": str(flag["name"]), "value": str(flag.get("value", ""))} for flag in flags]
            database.settings_version += 1

        return self._operate(call, "UPDATE", done)

    def _restart(self, call: Call) -> dict[str, Any]:
        database = self._idle_database(call)
        database.state = "MAINTENANCE"

        def done() -> None:
            database.state = "RUNNABLE"
            try:
                self._terminate_clients(database.spec)
            except BackendError as error:
                raise ApiError(500, f"The restart failed: {error}", legacy_reason="internalError") from error

        return self._operate(call, "RESTART", done)

    def _get_operation(self, call: Call) -> dict[str, Any]:
        operation = self._book.get(call.params["operation"])
        if operation is None or call.params["project"] != self.project:
            raise ApiError(404, f"The Cloud SQL operation {call.params['operation']} does not exist.",
                           legacy_reason="operationDoesNotExist")  # fmt: skip
        return self._render_operation(operation)

    # ---- the backing PostgreSQL

    def _connect(self, spec: SqlInstanceSpec) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                host=spec.host, port=spec.port, user=spec.user, password=spec.password, dbname=spec.database,
                autocommit=True, connect_timeout=3, application_name="gcp-emulator-control-plane",
            )  # fmt: skip
        except psycopg.Error as error:
            raise BackendError(f"the PostgreSQL behind Cloud SQL instance {spec.name!r} "
                               f"({spec.host}:{spec.port}) cannot be reached: {error}") from error  # fmt: skip

    def _backends_per_database(self, spec: SqlInstanceSpec) -> dict[str, int]:
        try:
            with self._connect(spec) as conn:
                rows = conn.execute(f"SELECT a.datname, count(*) {_CLIENT_BACKENDS} GROUP BY a.datname").fetchall()
        except psycopg.Error as error:
            raise BackendError(str(error)) from error
        return {str(name): int(count) for name, count in rows}

    def _terminate_clients(self, spec: SqlInstanceSpec) -> None:
        """What a restart does to the clients: every non-superuser client backend is terminated."""
        query = (
            f"SELECT pg_terminate_backend(a.pid) {_CLIENT_BACKENDS} "
            "AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = a.usename AND r.rolsuper)"
        )
        try:
            with self._connect(spec) as conn:
                conn.execute(query)
        except psycopg.Error as error:
            raise BackendError(str(error)) from error

    # ---- helpers

    def _idle_database(self, call: Call) -> _Database:
        database = self._database(call.params)
        running = self._book.in_progress(_RESOURCE.format(**call.params))
        if running is not None:
            raise ApiError(
                409,
                "Operation failed because another operation was already in progress.",
                legacy_reason="operationInProgress",
                reason="OPERATION_IN_PROGRESS",
                metadata={"resource": _RESOURCE.format(**call.params), "operation": running.name},
            )
        return database

    def _operate(self, call: Call, verb: str, done: Callable[[], None]) -> dict[str, Any]:
        operation = self._book.begin(verb, _RESOURCE.format(**call.params), call.principal.email, done)
        return self._render_operation(operation)

    def _instance_url(self, name: str) -> str:
        return f"{self.base_url}/sql/v1beta4/projects/{self.project}/instances/{name}"

    def _render(self, database: _Database) -> dict[str, Any]:
        spec = database.spec
        return {
            "kind": "sql#instance",
            "name": spec.name,
            "project": self.project,
            "region": spec.region,
            "gceZone": f"{spec.region}-a",
            "state": database.state,
            "databaseVersion": spec.database_version,
            "backendType": "SECOND_GEN",
            "instanceType": "CLOUD_SQL_INSTANCE",
            "settings": {
                "kind": "sql#settings",
                "tier": database.tier,
                "settingsVersion": str(database.settings_version),
                "databaseFlags": [dict(flag) for flag in database.flags],
                "activationPolicy": "ALWAYS",
                "availabilityType": "ZONAL",
            },
            "ipAddresses": [{"type": "PRIMARY", "ipAddress": spec.host}],
            "connectionName": f"{self.project}:{spec.region}:{spec.name}",
            "createTime": database.created,
            "selfLink": self._instance_url(spec.name),
        }

    def _render_operation(self, operation: Operation) -> dict[str, Any]:
        name = operation.target.rsplit("/", 1)[-1]
        phase = operation.phase()
        rendered: dict[str, Any] = {
            "kind": "sql#operation",
            "name": operation.name,
            "targetLink": self._instance_url(name),
            "targetId": name,
            "targetProject": self.project,
            "status": phase,
            "user": operation.user,
            "insertTime": rfc3339(operation.inserted),
            "operationType": operation.verb,
            "selfLink": f"{self.base_url}/sql/v1beta4/projects/{self.project}/operations/{operation.name}",
        }
        if phase != "PENDING":
            rendered["startTime"] = rfc3339(operation.inserted)
        if operation.finished is not None:
            rendered["endTime"] = rfc3339(operation.finished)
        if operation.error is not None:
            rendered["error"] = {
                "kind": "sql#operationErrors",
                "errors": [{"kind": "sql#operationError", "code": operation.error.legacy_reason,
                            "message": operation.error.message}],
            }  # fmt: skip
        return rendered
