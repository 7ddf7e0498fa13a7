"""Did the data survive? A cheap fingerprint of a server's data before and after a disruptive step.

A restart that brings back *a* server is not a recovery if it is a new, empty one: the
probe would call it healthy. So every disruptive or destructive step is bracketed by
two fingerprints, and a change the tool does not declare (`ToolSpec.may_change`) is a
data-safety failure that the verifier reports loudly instead of "resolved".

What is fingerprinted, per kind (each fact cheap: one round trip or one small file):

- Redis: key count, and the persistence settings (`dir`, `dbfilename`, `appendonly`,
  `appenddirname`, `save`) — a server started with another config has other data.
  A Redis without persistence loses its keys on a restart by design; one with
  persistence must come back with them.
- PostgreSQL: the cluster's system identifier (set by `initdb`, unchanged for the life
  of the cluster: a different one means a different cluster), `data_directory`, the
  databases and the user tables of the inventory's database.
- nginx: the sha256 of its config file.
- GCP (read through the API): a Compute Engine VM's id, creation time and disks (a reset,
  stop or start keeps all three); a Memorystore or Cloud SQL instance's creation time plus
  the Redis or PostgreSQL facts above, read on its data plane.

A server that is down cannot be asked, so "before" then comes from disk where the
inventory (or the state folder) says where the data lives: PostgreSQL's system
identifier from `global/pg_control`, Redis' persistence files and their sizes.
"""

from __future__ import annotations

import hashlib
import struct
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from pydantic import BaseModel, ConfigDict

from opsgraph.tools.connections import postgres_conninfo
from opsgraph.tools.environments.gcp.dataplane import postgres_data_plane, redis_data_plane
from opsgraph.tools.environments.gcp.errors import GcpApiError
from opsgraph.tools.environments.gcp.instances import Json, compute_instance, redis_instance, sql_instance
from opsgraph.tools.environments.gcp.permissions import PROBE_PERMISSIONS
from opsgraph.tools.errors import ToolError
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.redis_tools import kept_client

Facts = dict[str, Any]
# An RDB file of an empty dataset is ~100 bytes; AOF files of one hold at most a preamble.
_EMPTY_PERSISTENCE_BYTES = 200
_REDIS_SETTINGS = ("dir", "dbfilename", "appendonly", "appenddirname", "save")
_VM_FACTS = ("id", "creation_timestamp", "disks")
_MANAGED_FACTS = ("create_time",)


class DataFingerprint(BaseModel):
    """What a server's data looked like at one moment, and where that was read from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str  # live (asked the server) | disk (read its files) | none (neither was possible)
    facts: Facts = {}
    error: str | None = None
    taken_at: float


class DataCheck(BaseModel):
    """The fingerprints around one step and what changed that the step does not declare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    before: DataFingerprint
    after: DataFingerprint
    unexpected: list[str]

    @property
    def survived(self) -> bool:
        return not self.unexpected


# ---- taking fingerprints


def _redis_live(resource: Resource) -> Facts:
    client = kept_client(resource)  # shared and kept open: a full server still answers it
    keyspace = client.info("keyspace")
    try:
        settings = {name: client.config_get(name).get(name) for name in _REDIS_SETTINGS}
    except redis.ResponseError:  # CONFIG renamed away (managed Redis): keys are still compared
        settings = {}
    keys = sum(int(db.get("keys", 0)) for db in keyspace.values() if isinstance(db, dict))
    persistent = settings.get("appendonly") == "yes" or bool(settings.get("save"))
    return {**settings, "keys": keys, "persistent": persistent}


def _redis_disk(data_dir: Path) -> Facts:
    files = [path for path in data_dir.rglob("*") if path.is_file() and path.suffix in (".aof", ".rdb")]
    return {"dir": str(data_dir), "persisted_bytes": sum(path.stat().st_size for path in files)}


# One statement per fact: a role without the privilege for one (pg_control_system and
# data_directory need a superuser or pg_monitor / pg_read_all_settings) still gets the others.
_PG_FACTS = {
    "data_directory": "SELECT current_setting('data_directory')",
    "system_identifier": "SELECT system_identifier::text FROM pg_control_system()",
    "databases": "SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM pg_database WHERE NOT datistemplate",
    "tables": "SELECT coalesce(array_agg(schemaname || '.' || tablename ORDER BY 1), '{}') FROM pg_tables"
    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
}


def _postgres_live(resource: Resource) -> Facts:
    facts: Facts = {}
    with psycopg.connect(postgres_conninfo(resource, "opsgraph-data-check"), autocommit=True) as conn:
        for name, query in _PG_FACTS.items():
            try:
                row = conn.execute(query).fetchone()
            except psycopg.errors.InsufficientPrivilege:
                continue
            assert row is not None  # a SELECT of one aggregate or setting always returns one row
            facts[name] = list(row[0]) if isinstance(row[0], list) else row[0]
    return facts


def _postgres_disk(data_dir: Path) -> Facts:
    """The system identifier is the first 8 bytes of global/pg_control (little-endian on this host)."""
    with (data_dir / "global" / "pg_control").open("rb") as control:
        (identifier,) = struct.unpack("<Q", control.read(8))
    return {"data_directory": str(data_dir), "system_identifier": str(identifier)}


def _data_dir(resource: Resource, state_dir: Path) -> Path | None:
    """Where the data lives on disk, when known: declared for external servers, ours for local ones."""
    if resource.environment is Environment.EXTERNAL:
        return resource.external.paths.data_dir
    if resource.environment is Environment.LOCAL:
        folder = state_dir.resolve() / "local" / resource.name
        return folder / "data" if resource.kind is ResourceKind.POSTGRES else folder
    return None


def _nginx_config(resource: Resource, state_dir: Path) -> Path | None:
    if resource.environment is Environment.EXTERNAL:
        return resource.external.paths.config_file
    if resource.environment is Environment.LOCAL:
        return state_dir.resolve() / "local" / resource.name / "nginx.conf"
    return None


def _nginx_facts(resource: Resource, state_dir: Path) -> Facts:
    path = _nginx_config(resource, state_dir)
    if path is None:
        raise FileNotFoundError("no config file is known for this nginx")
    return {"config_file": str(path), "config_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _vm_facts(instance: Json) -> Facts:
    disks = [disk.get("source") or f"scratch:{disk.get('device_name')}" for disk in instance.get("disks", [])]
    return {"id": instance.get("id"), "creation_timestamp": instance.get("creation_timestamp"), "disks": sorted(disks)}


def _gcp_fingerprint(resource: Resource, now: float) -> DataFingerprint:
    """Through the API; for Memorystore and Cloud SQL also on the data plane (whose silence is noted, not fatal)."""
    grant = PROBE_PERMISSIONS[resource.kind]
    try:
        if resource.kind is ResourceKind.GCP_COMPUTE:
            return DataFingerprint(source="live", facts=_vm_facts(compute_instance(resource, grant)), taken_at=now)
        redis_kind = resource.kind is ResourceKind.GCP_REDIS
        instance = redis_instance(resource, grant) if redis_kind else sql_instance(resource, grant)
    except GcpApiError as error:
        return DataFingerprint(source="none", error=str(error), taken_at=now)
    facts: Facts = {"create_time": instance.get("create_time")}
    try:
        if redis_kind:
            facts |= _redis_live(redis_data_plane(resource, instance))
        else:
            facts |= _postgres_live(postgres_data_plane(resource, instance))
    except (ToolError, redis.RedisError, OSError, psycopg.Error) as error:
        problem = f"the data plane did not answer: {type(error).__name__}: {str(error).strip()}"
        return DataFingerprint(source="live", facts=facts, error=problem, taken_at=now)
    return DataFingerprint(source="live", facts=facts, taken_at=now)


def fingerprint(resource: Resource, state_dir: Path) -> DataFingerprint | None:
    """The data's fingerprint now: live when the server answers, else from disk; None for kinds without data."""
    now = time.time()
    if resource.kind.on_gcp:
        return _gcp_fingerprint(resource, now)
    if resource.kind is ResourceKind.NGINX:
        try:
            return DataFingerprint(source="disk", facts=_nginx_facts(resource, state_dir), taken_at=now)
        except OSError as error:
            return DataFingerprint(source="none", error=f"{type(error).__name__}: {error}", taken_at=now)
    if resource.kind is ResourceKind.REDIS:
        live, disk = _redis_live, _redis_disk
        live_errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
    elif resource.kind is ResourceKind.POSTGRES:
        live, disk = _postgres_live, _postgres_disk
        live_errors = (psycopg.Error,)
    else:
        return None
    try:
        return DataFingerprint(source="live", facts=live(resource), taken_at=now)
    except live_errors as error:
        problem = f"{type(error).__name__}: {str(error).strip()}"
    data_dir = _data_dir(resource, state_dir)
    if data_dir is None:
        return DataFingerprint(source="none", error=f"{problem}; no data directory is known", taken_at=now)
    try:
        return DataFingerprint(source="disk", facts=disk(data_dir), taken_at=now)
    except OSError as error:
        return DataFingerprint(source="none", error=f"{problem}; reading {data_dir}: {error}", taken_at=now)


# ---- comparing them


def _changed(before: Facts, after: Facts, names: tuple[str, ...]) -> list[str]:
    return [
        f"{name} changed from {before[name]!r} to {after[name]!r}"
        for name in names
        if name in before and name in after and before[name] != after[name]
    ]


def _redis_changes(before: Facts, after: Facts) -> list[str]:
    found = _changed(before, after, _REDIS_SETTINGS)
    keys_after = after.get("keys")
    if keys_after is None:
        return found
    if before.get("persistent") and before.get("keys", 0) > 0 and keys_after < before["keys"] / 2:
        found.append(f"keys fell from {before['keys']} to {keys_after} on a server with persistence")
    if before.get("persisted_bytes", 0) > _EMPTY_PERSISTENCE_BYTES and keys_after == 0:
        found.append(
            f"the data directory {before['dir']} held {before['persisted_bytes']} bytes of persisted data, "
            "but the server now has no keys"
        )
    return found


def _postgres_changes(before: Facts, after: Facts) -> list[str]:
    found = _changed(before, after, ("system_identifier", "data_directory"))
    if any(line.startswith("system_identifier") for line in found):
        found.append("a different PostgreSQL cluster answers: the data was replaced")
    for collection in ("databases", "tables"):
        if collection in before and collection in after:
            gone = sorted(set(before[collection]) - set(after[collection]))
            if gone:
                found.append(f"{collection} gone: {', '.join(gone)}")
    return found


def unexpected_changes(
    kind: ResourceKind, before: DataFingerprint, after: DataFingerprint, may_change: frozenset[str]
) -> list[str]:
    """What changed in the data that the step was not declared to change."""
    allowed = {name: value for name, value in after.facts.items() if name not in may_change}
    kept = {name: value for name, value in before.facts.items() if name not in may_change}
    if kind is ResourceKind.REDIS:
        return _redis_changes(kept, allowed)
    if kind is ResourceKind.POSTGRES:
        return _postgres_changes(kept, allowed)
    if kind is ResourceKind.GCP_COMPUTE:
        return _changed(kept, allowed, _VM_FACTS)
    if kind is ResourceKind.GCP_REDIS:
        return _changed(kept, allowed, _MANAGED_FACTS) + _redis_changes(kept, allowed)
    if kind is ResourceKind.GCP_SQL:
        return _changed(kept, allowed, _MANAGED_FACTS) + _postgres_changes(kept, allowed)
    return _changed(kept, allowed, ("config_file", "config_sha256"))


def check_after(
    resource: Resource, state_dir: Path, before: DataFingerprint | None, may_change: frozenset[str]
) -> DataCheck | None:
    """The check after a step, given the fingerprint taken before it (None for kinds without data)."""
    after = fingerprint(resource, state_dir)
    if before is None or after is None:
        return None
    return DataCheck(
        before=before, after=after, unexpected=unexpected_changes(resource.kind, before, after, may_change)
    )
