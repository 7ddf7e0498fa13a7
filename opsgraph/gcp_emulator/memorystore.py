"""Emulated Memorystore for Redis (`/v1/projects/{p}/locations/{l}/instances…`) in front of real redis-servers.

get, list, patch (updateMask memorySizeGb only) and failover (STANDARD_HA only), each
mutation a google.longrunning Operation. The emulator does what Google's control plane
does to the data plane: it sets the backing server's `maxmemory` to
memory_size_gb * bytes_per_gb at start and again when a resize is DONE. A failover
swaps currentLocationId with the alternative zone and leaves the data alone (one
redis-server plays both replicas). State is UPDATING during a patch and FAILING_OVER
during a failover, READY otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from opsgraph.gcp_emulator.config import RedisInstanceSpec
from opsgraph.gcp_emulator.errors import ApiError, BackendError, not_found, operation_in_progress
from opsgraph.gcp_emulator.gate import Call, Route
from opsgraph.gcp_emulator.metrics import Series
from opsgraph.gcp_emulator.operations import Operation, OperationBook, rfc3339, utc_now

_INSTANCE = "/v1/projects/{project}/locations/{location}/instances/{instance}"
_RESOURCE = "projects/{project}/locations/{location}/instances/{instance}"
_TYPE = "type.googleapis.com/google.cloud.redis.v1."
_PATCHABLE = {"memorySizeGb", "memory_size_gb"}


@dataclass
class _Cache:
    spec: RedisInstanceSpec
    memory_size_gb: int
    state: str
    current_zone: str
    alternative_zone: str | None
    created: str
    redis_version: str

    def full_name(self, project: str) -> str:
        return f"projects/{project}/locations/{self.spec.region}/instances/{self.spec.name}"


class Memorystore:
    """The Memorystore instances of one project, each driving its real redis-server."""

    def __init__(self, project: str, specs: list[RedisInstanceSpec], lock: threading.RLock, delay_s: float) -> None:
        self.project = project
        self._lock = lock
        self._book = OperationBook(lock, delay_s)
        self._clients = {spec.name: _client(spec) for spec in specs}
        created = rfc3339(utc_now())
        self._caches = {
            (spec.region, spec.name): _Cache(
                spec=spec,
                memory_size_gb=spec.memory_size_gb,
                state="READY",
                current_zone=f"{spec.region}-a",
                alternative_zone=f"{spec.region}-b" if spec.tier == "STANDARD_HA" else None,
                created=created,
                redis_version="",
            )
            for spec in specs
        }

    def start(self) -> None:
        """Read each backing server's version and give it the instance's maxmemory; BackendError if one is down."""
        for cache in self._caches.values():
            client = self._clients[cache.spec.name]
            try:
                version = str(client.info("server")["redis_version"])
                client.config_set("maxmemory", cache.memory_size_gb * cache.spec.bytes_per_gb)
            except redis.RedisError as error:
                where = f"{cache.spec.host}:{cache.spec.port}"
                name = cache.spec.name
                raise BackendError(
                    f"the redis-server of Memorystore instance {name!r} ({where}) fails: {error}"
                ) from error
            major, minor, *_ = version.split(".")
            cache.redis_version = f"REDIS_{major}_{minor}"

    def close(self) -> None:
        self._book.close()
        for client in self._clients.values():
            client.close()

    def routes(self) -> list[Route]:
        ops = "/v1/projects/{project}/locations/{location}/operations/{operation}"
        return [
            Route("GET", _INSTANCE, "redis.projects.locations.instances.get", "redis.instances.get", _RESOURCE,
                  self._get),
            Route(
                "GET", "/v1/projects/{project}/locations/{location}/instances",
                "redis.projects.locations.instances.list", "redis.instances.list",
                "projects/{project}/locations/{location}", self._list,
            ),
            Route("PATCH", _INSTANCE, "redis.projects.locations.instances.patch", "redis.instances.update", _RESOURCE,
                  self._patch),
            Route(
                "POST", _INSTANCE + ":failover", "redis.projects.locations.instances.failover",
                "redis.instances.failover", _RESOURCE, self._failover,
            ),
            Route(
                "GET", ops, "redis.projects.locations.operations.get", "redis.operations.get",
                "projects/{project}/locations/{location}/operations/{operation}", self._get_operation,
            ),
        ]  # fmt: skip

    def instance(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            self._book.settle()
            cache = next((cache for (_, cache_name), cache in self._caches.items() if cache_name == name), None)
            return None if cache is None else self._render(cache)

    def series(self, metric_type: str) -> list[Series]:
        """`stats/memory/usage_ratio`: used_memory / maxmemory, read live from each backing server."""
        if metric_type != "redis.googleapis.com/stats/memory/usage_ratio":
            return []
        found = []
        for cache in list(self._caches.values()):
            try:
                memory = self._clients[cache.spec.name].info("memory")
            except redis.RedisError:
                continue  # a server that does not answer reports no point, as a down instance would
            maxmemory = int(memory.get("maxmemory", 0)) or int(memory.get("total_system_memory", 1))
            labels = {
                "project_id": self.project,
                "instance_id": cache.full_name(self.project),
                "region": cache.spec.region,
                "node_id": "node-0",
            }
            ratio = int(memory["used_memory"]) / maxmemory
            found.append(Series(metric_type, {"role": "primary"}, "redis_instance", labels, ratio))
        return found

    # ---- handlers (called under the lock)

    def _cache(self, params: dict[str, str]) -> _Cache:
        found = self._caches.get((params["location"], params["instance"]))
        if found is None or params["project"] != self.project:
            raise not_found(_RESOURCE.format(**params))
        return found

    def _get(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        return self._render(self._cache(call.params))

    def _list(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        location = call.params["location"]
        wanted = [cache for (region, _), cache in sorted(self._caches.items()) if location in (region, "-")]
        return {"instances": [self._render(cache) for cache in wanted]}

    def _patch(self, call: Call) -> dict[str, Any]:
        cache = self._idle_cache(call)
        fields = [field for field in call.query.get("updateMask", "").split(",") if field]
        if not fields:
            raise ApiError(400, "update_mask must name the fields to update (the emulator supports memorySizeGb).")
        unsupported = [field for field in fields if field not in _PATCHABLE]
        if unsupported:
            raise ApiError(
                400, f"Updating {', '.join(unsupported)} is not supported by the emulator: only memorySizeGb is."
            )
        size = call.body.get("memorySizeGb")
        if not isinstance(size, int) or not 1 <= size <= 300:
            raise ApiError(400, f"Invalid memorySizeGb {size!r}: it must be an integer from 1 to 300.")
        cache.state = "UPDATING"
        client = self._clients[cache.spec.name]

        def done() -> None:
            cache.state = "READY"
            try:
                client.config_set("maxmemory", size * cache.spec.bytes_per_gb)
            except redis.RedisError as error:
                raise ApiError(500, f"Resizing the instance failed: {error}") from error
            cache.memory_size_gb = size

        return self._operate(call, "update", done)

    def _failover(self, call: Call) -> dict[str, Any]:
        cache = self._idle_cache(call)
        if cache.alternative_zone is None:
            raise ApiError(
                400,
                f"Instance '{_RESOURCE.format(**call.params)}' is a BASIC tier instance: failover is only "
                "supported for STANDARD_HA tier instances.",
                status="FAILED_PRECONDITION",
                legacy_reason="failedPrecondition",
            )
        cache.state = "FAILING_OVER"

        def done() -> None:
            assert cache.alternative_zone is not None
            cache.current_zone, cache.alternative_zone = cache.alternative_zone, cache.current_zone
            cache.state = "READY"

        return self._operate(call, "failover", done)

    def _get_operation(self, call: Call) -> dict[str, Any]:
        operation = self._book.get(call.params["operation"])
        prefix = f"projects/{self.project}/locations/{call.params['location']}/"
        if operation is None or call.params["project"] != self.project or not operation.target.startswith(prefix):
            raise not_found("projects/{project}/locations/{location}/operations/{operation}".format(**call.params))
        return self._render_operation(operation)

    # ---- helpers

    def _idle_cache(self, call: Call) -> _Cache:
        cache = self._cache(call.params)
        running = self._book.in_progress(_RESOURCE.format(**call.params))
        if running is not None:
            raise operation_in_progress(_RESOURCE.format(**call.params), running.name)
        return cache

    def _operate(self, call: Call, verb: str, done: Callable[[], None]) -> dict[str, Any]:
        operation = self._book.begin(verb, _RESOURCE.format(**call.params), call.principal.email, done)
        return self._render_operation(operation)

    def _render(self, cache: _Cache) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "name": cache.full_name(self.project),
            "locationId": f"{cache.spec.region}-a",
            "currentLocationId": cache.current_zone,
            "redisVersion": cache.redis_version,
            "host": cache.spec.host,
            "port": cache.spec.port,
            "createTime": cache.created,
            "state": cache.state,
            "tier": cache.spec.tier,
            "memorySizeGb": cache.memory_size_gb,
            "connectMode": "DIRECT_PEERING",
            "persistenceConfig": {"persistenceMode": "DISABLED"},
        }
        if cache.spec.tier == "STANDARD_HA":
            rendered["alternativeLocationId"] = f"{cache.spec.region}-b"
            rendered["replicaCount"] = 1
        return rendered

    def _render_operation(self, operation: Operation) -> dict[str, Any]:
        parts = operation.target.split("/")  # projects/P/locations/L/instances/N
        location, name = parts[3], parts[5]
        metadata: dict[str, Any] = {
            "@type": _TYPE + "OperationMetadata",
            "createTime": rfc3339(operation.inserted),
            "target": operation.target,
            "verb": operation.verb,
            "cancelRequested": False,
            "apiVersion": "v1",
        }
        rendered: dict[str, Any] = {
            "name": f"projects/{self.project}/locations/{location}/operations/{operation.name}",
            "metadata": metadata,
            "done": operation.done,
        }
        if operation.finished is not None:
            metadata["endTime"] = rfc3339(operation.finished)
            if operation.error is not None:
                rendered["error"] = {"code": operation.error.rpc_code, "message": operation.error.message}
            else:
                rendered["response"] = {"@type": _TYPE + "Instance", **self._render(self._caches[(location, name)])}
        return rendered


def _client(spec: RedisInstanceSpec) -> redis.Redis:
    return redis.Redis(
        host=spec.host, port=spec.port, password=spec.password, socket_timeout=3, socket_connect_timeout=3,
        decode_responses=True, client_name="gcp-emulator-control-plane",
    )  # fmt: skip
