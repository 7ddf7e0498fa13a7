"""Is a server up? A protocol-level answer per kind, for servers OpsGraph did not start.

"Up" means a server process owns the port and speaks its protocol — not that it has
room for us. A Redis at `maxclients` or a PostgreSQL with only reserved slots left is
up (and saturated): restarting it would be the wrong fix, so both count as answering
here. A server still loading its data (Redis replaying its AOF, PostgreSQL in
recovery) is not up yet.
"""

from __future__ import annotations

import socket

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from opsgraph.tools.connections import postgres_conninfo
from opsgraph.tools.inventory import Resource, ResourceKind

_TIMEOUT_S = 2.0
# What a full server says to one more client: it is up, just out of room (or not ours to enter).
REDIS_FULL = "max number of clients reached"
POSTGRES_FULL = ("too many clients", "remaining connection slots are reserved", "password authentication failed")


def redis_answers(resource: Resource) -> bool:
    connection = resource.connection
    client = redis.Redis(
        host=connection.host,
        port=connection.port,
        username=connection.user,
        password=connection.password(),
        socket_timeout=_TIMEOUT_S,
        socket_connect_timeout=_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),  # redis-py retries 3 times with backoff by default: seconds per "no"
    )
    try:
        return bool(client.ping())
    except redis.BusyLoadingError:
        return False
    except (redis.RedisError, OSError) as error:
        return REDIS_FULL in str(error)
    finally:
        client.close()


def postgres_answers(resource: Resource) -> bool:
    try:
        with psycopg.connect(postgres_conninfo(resource, "opsgraph-liveness", connect_timeout=int(_TIMEOUT_S))):
            return True
    except psycopg.Error as error:
        return any(text in str(error) for text in POSTGRES_FULL)


def tcp_answers(resource: Resource) -> bool:
    """Something accepts connections on the port (nginx, an HTTP service)."""
    try:
        with socket.create_connection((resource.connection.host, resource.connection.port), timeout=_TIMEOUT_S):
            return True
    except OSError:
        return False


def answers(resource: Resource) -> bool:
    """Whether the resource's server is up and speaks its protocol on its port."""
    if resource.kind is ResourceKind.REDIS:
        return redis_answers(resource)
    if resource.kind is ResourceKind.POSTGRES:
        return postgres_answers(resource)
    return tcp_answers(resource)
