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

from opsgraph.tools.connections import postgres_conninfo, redis_client
from opsgraph.tools.inventory import Resource, ResourceKind

_TIMEOUT_S = 2.0
# What a full server says to one more client, or one that rejects our credentials: it is
# up, just out of room (or not ours to enter).
REDIS_FULL = "max number of clients reached"
REDIS_UP = (REDIS_FULL, "WRONGPASS", "NOAUTH", "invalid username-password pair")
POSTGRES_FULL = ("too many clients", "remaining connection slots are reserved", "password authentication failed")


def redis_answers(resource: Resource) -> bool:
    client = redis_client(resource, _TIMEOUT_S)  # a new connection: a full server turns it away, and says so
    try:
        return bool(client.ping())
    except redis.BusyLoadingError:
        return False
    except (redis.RedisError, OSError) as error:
        return any(text in str(error) for text in REDIS_UP)
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
