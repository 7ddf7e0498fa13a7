"""How OpsGraph reaches a resource: PostgreSQL connection strings and new Redis clients, built in one place.

Kept apart from the probes and tools that use them so that anything in the tools layer
(liveness checks, data fingerprints, environments) can connect without importing the
tool modules.
"""

from __future__ import annotations

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from opsgraph.tools.inventory import Resource

# redis-py 8.1 retries every command by default with Retry(ExponentialWithJitterBackoff(
# base=0.01, cap=1), retries=10) on connection errors and timeouts: ~3 s of backoff
# before a down server is reported, on every probe and every data check. One immediate
# retry is enough to replace a socket that a restarted server closed; a server that
# refuses twice is down.
RETRY = Retry(NoBackoff(), retries=1)


def postgres_conninfo(resource: Resource, application_name: str = "opsgraph-probe", connect_timeout: int = 3) -> str:
    """A libpq connection string; the password comes from the environment, never the inventory."""
    connection = resource.connection
    return psycopg.conninfo.make_conninfo(
        host=connection.host,
        port=connection.port,
        user=connection.user or "postgres",
        dbname=connection.database or "postgres",
        password=connection.password(),
        connect_timeout=connect_timeout,
        application_name=application_name,
    )


def redis_client(resource: Resource, timeout_s: float = 2.0) -> redis.Redis:
    """A new client with short timeouts: a hung Redis must not hang a probe or a fix.

    A fresh connection, for fault injection, tests and one-off checks: it is refused by
    a full server. OpsGraph's probes and tools use `kept_client`.
    """
    connection = resource.connection
    return redis.Redis(
        host=connection.host,
        port=connection.port,
        username=connection.user,
        password=connection.password(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        decode_responses=True,
        retry=RETRY,
    )
