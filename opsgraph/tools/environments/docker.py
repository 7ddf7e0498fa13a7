"""The docker environment: resources that run as containers of a Docker Engine.

The engine is the one `DOCKER_HOST` names (the docker CLI's rule; the default
socket otherwise). A resource's container is `docker.container` in the inventory,
else the container named like the resource. Every failure an operator can act on —
no engine answers, no such container, the engine refused — is a `DockerError`, a
`ToolError`, so tools report it as data and the CLI prints it as one line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container

from opsgraph.tools.errors import ToolError
from opsgraph.tools.inventory import Inventory, Resource

SERVICE_LABEL = "opsgraph.service"
REPLICA_LABEL = "opsgraph.replica-of"  # set on the containers docker_scale creates
_POLL_S = 0.1


class DockerError(ToolError):
    """The engine did not answer, or refused an operation; the message says which and where."""


class ContainerMissing(DockerError):
    """The engine answers but has no container by that name."""


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


@contextmanager
def docker_client(timeout_s: float = 30.0) -> Iterator[docker.DockerClient]:
    """A client for the engine of `DOCKER_HOST`, closed after use (it holds a connection pool).

    Errors raised inside the block by the engine or the transport become `DockerError`.
    """
    try:
        client = docker.from_env(timeout=max(1, round(timeout_s)))
    except DockerException as error:
        raise DockerError(f"no Docker engine answers at {engine_address()}: {error}") from None
    try:
        yield client
    except APIError as error:
        raise DockerError(f"the Docker engine refused: {error.explanation or error}") from None
    except (DockerException, requests.RequestException) as error:
        raise DockerError(f"the Docker engine at {engine_address()} failed: {type(error).__name__}: {error}") from None
    finally:
        client.close()


def container_name(resource: Resource) -> str:
    """The container a resource maps to: `docker.container`, else the resource's own name."""
    return resource.docker.container or resource.name


def get_container(client: docker.DockerClient, resource: Resource) -> Container:
    name = container_name(resource)
    try:
        return client.containers.get(name)
    except NotFound:
        raise ContainerMissing(
            f"resource {resource.name!r}: no container named {name!r} on the engine at {engine_address()}"
        ) from None


def _created_ns(container: Container) -> int:
    """Creation time in ns from inspect's RFC 3339 stamp (its fraction has 0-9 digits: not sortable as text)."""
    stamp = str(container.attrs["Created"]).rstrip("Z")
    seconds, _, fraction = stamp.partition(".")
    whole = datetime.fromisoformat(seconds).replace(tzinfo=UTC)
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])


def service_containers(client: docker.DockerClient, service_label: str) -> list[Container]:
    """Every container (any state) labelled `opsgraph.service=<label>`: originals before
    replicas made by `docker_scale`, each group oldest first."""
    found = client.containers.list(all=True, filters={"label": f"{SERVICE_LABEL}={service_label}"})
    return sorted(found, key=lambda c: (REPLICA_LABEL in c.labels, _created_ns(c), c.name))


def container_state(container: Container) -> dict[str, Any]:
    """The engine's view of the container's process (`State` of docker inspect)."""
    state: dict[str, Any] = container.attrs["State"]
    return state


@dataclass(frozen=True)
class ContainerStatus:
    """What a container is doing after a lifecycle operation (the `ServerStatus` shape)."""

    name: str
    state: str
    pid: int | None
    running: bool


def status_of(container: Container) -> ContainerStatus:
    state = container_state(container)
    return ContainerStatus(
        name=container.name,
        state=str(state["Status"]),
        pid=int(state["Pid"]) or None,
        running=bool(state["Running"]) and not state["Restarting"],
    )


def wait_until_up(container: Container, timeout_s: float) -> ContainerStatus:
    """Wait until the container runs and, if its image declares a health check, is healthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        container.reload()
        status = status_of(container)
        health = container_state(container).get("Health", {}).get("Status")
        if status.running and health in (None, "healthy"):
            return status
        if time.monotonic() > deadline:
            raise DockerError(
                f"container {container.name} is not up {timeout_s:.0f} s after starting: "
                f"state {status.state}{f', health {health}' if health else ''}"
            )
        time.sleep(_POLL_S)


class DockerEnvironment:
    """Lifecycle operations for `environment: docker` resources, through the engine's API."""

    def __init__(self, inventory: Inventory, *, timeout_s: float = 30.0) -> None:
        self.inventory = inventory
        self.timeout_s = timeout_s

    def restart(self, resource_name: str, stop_timeout_s: int = 10) -> ContainerStatus:
        """Restart the resource's container (SIGTERM, SIGKILL after `stop_timeout_s`) and wait until it is up.

        Works whatever state the container is in (running, exited, OOM-killed): a restart
        of a stopped container starts it.
        """
        resource = self.inventory.get(resource_name)
        with docker_client(self.timeout_s + stop_timeout_s) as client:
            container = get_container(client, resource)
            container.restart(timeout=stop_timeout_s)
            return wait_until_up(container, self.timeout_s)

    def log_tail(self, resource_name: str, lines: int = 50) -> list[str]:
        """The last `lines` lines the container wrote to stdout and stderr."""
        resource = self.inventory.get(resource_name)
        with docker_client(self.timeout_s) as client:
            raw: bytes = get_container(client, resource).logs(tail=max(0, lines), stdout=True, stderr=True)
        return raw.decode("utf-8", errors="replace").splitlines()
