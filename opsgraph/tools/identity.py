"""Which server instance answers for a resource right now: the evidence that a restart happened.

A restart that was started and never reported (the worker was killed mid-call) leaves an
action in doubt. Repeating it blindly could restart a server twice; forgetting it could
leave the fault unfixed. Each restart tool therefore notes the server's identity before it
runs, and a later run compares it with the identity now: a new instance means the restart
happened. The identity is what changes on every start of a server and nothing else —
Redis's `run_id`, PostgreSQL's postmaster start time, a local process's pid, a container's
start time.
"""

from __future__ import annotations

import psycopg
import redis

from opsgraph.tools.connections import postgres_conninfo, redis_client
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.spec import ToolContext

_TIMEOUT_S = 2.0


def _redis_identity(resource: Resource) -> str | None:
    client = redis_client(resource, timeout_s=_TIMEOUT_S)
    try:
        return str(client.info("server")["run_id"])
    except redis.RedisError:
        return None
    finally:
        client.close()


def _postgres_identity(resource: Resource) -> str | None:
    try:
        with psycopg.connect(postgres_conninfo(resource, "opsgraph-identity", connect_timeout=2)) as conn:
            row = conn.execute("SELECT pg_postmaster_start_time()::text").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _local_identity(resource: Resource, ctx: ToolContext) -> str | None:
    # Imported here: the local stack pulls in every server module, which a remote-only setup never needs.
    from opsgraph.tools.environments.local import LocalStack

    for status in LocalStack(ctx.state_dir, ctx.inventory).status():
        if status.name == resource.name and status.pid is not None:
            return f"pid:{status.pid}"
    return None


def _container_identity(resource: Resource) -> str | None:
    from opsgraph.tools.environments.docker import DockerError, docker_client, get_container

    try:
        with docker_client(timeout_s=_TIMEOUT_S) as client:
            state = get_container(client, resource).attrs["State"]
    except (DockerError, OSError):
        return None
    return f"{state.get('StartedAt')}" if state.get("Running") else None


def server_identity(resource: Resource, ctx: ToolContext) -> str | None:
    """The running instance's identity, or None when no instance answers (down, unreachable, unknown)."""
    if resource.kind is ResourceKind.REDIS:
        return _redis_identity(resource)
    if resource.kind is ResourceKind.POSTGRES:
        return _postgres_identity(resource)
    if resource.kind is ResourceKind.CONTAINER:
        return _container_identity(resource)
    if resource.environment is Environment.LOCAL:
        return _local_identity(resource, ctx)
    return None
