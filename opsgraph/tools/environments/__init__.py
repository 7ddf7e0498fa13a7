"""Where resources run, and the lifecycle operations that depend on it.

`local` (supervised processes on loopback ports) is the embedded default and manages
only what it created; `external` operates servers someone else started, exactly as the
inventory declares (commands, a systemd unit, or not at all); `docker` reaches
containers through the Docker Engine API; `gcp` (Compute Engine, Cloud SQL, Memorystore,
package `gcp`) is operated through Google's APIs by the gcp tools (`gcp_compute_restart_instance`,
`gcp_sql_restart_instance`, `gcp_redis_restart`...), which wait for Google's operations,
so it has no `Lifecycle`. No environment ever replaces a server or creates its data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from opsgraph.tools.environments.docker import DockerEnvironment
from opsgraph.tools.environments.external import ExternalEnvironment
from opsgraph.tools.environments.local import LocalStack
from opsgraph.tools.inventory import Environment, Inventory, Resource


class ServerStatus(Protocol):
    @property
    def pid(self) -> int | None: ...
    @property
    def running(self) -> bool: ...


class Lifecycle(Protocol):
    """Operations whose implementation depends on where a resource runs."""

    def restart(self, resource_name: str) -> ServerStatus: ...
    def log_tail(self, resource_name: str, lines: int = 50) -> list[str]: ...


class UnsupportedEnvironment(RuntimeError):
    """The resource lives in an environment this build cannot operate yet."""


def lifecycle_for(resource: Resource, inventory: Inventory, state_dir: Path) -> Lifecycle:
    """The lifecycle implementation for the environment this resource runs in."""
    if resource.environment is Environment.LOCAL:
        return LocalStack(state_dir, inventory)
    if resource.environment is Environment.DOCKER:
        return DockerEnvironment(inventory)
    if resource.environment is Environment.EXTERNAL:
        return ExternalEnvironment(inventory)
    if resource.environment is Environment.GCP:
        raise UnsupportedEnvironment(
            f"resource {resource.name!r} runs on GCP, whose lifecycle operations are the gcp tools "
            "(gcp_compute_restart_instance, gcp_sql_restart_instance, gcp_redis_restart, ...), not a Lifecycle"
        )
    raise UnsupportedEnvironment(
        f"resource {resource.name!r} runs in the {resource.environment} environment, "
        "which has no lifecycle operations in this version (only 'local', 'external' and 'docker')"
    )
