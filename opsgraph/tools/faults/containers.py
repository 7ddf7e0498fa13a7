"""Container faults: a crashed main process, and a real kernel OOM kill under the memory limit.

Both go through the Docker Engine's API and wait until the engine reports the
container stopped, so the probe that follows sees the fault, not a race.
"""

from __future__ import annotations

import time
from typing import Any

import docker
from docker.models.containers import Container

from opsgraph.tools.docker_tools import MB
from opsgraph.tools.environments.docker import container_state, docker_client, get_container
from opsgraph.tools.faults.scenario import Scenario
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.spec import ToolContext, ToolError

EXIT_TIMEOUT_S = 20.0
_POLL_S = 0.05


def _running(container: Container) -> bool:
    state = container_state(container)
    return bool(state["Running"]) and not state["Restarting"]


def _wait_for_exit(container: Container, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while True:
        container.reload()
        if not _running(container):
            state = container_state(container)
            return {
                "container": container.name,
                "state": state["Status"],
                "exit_code": state["ExitCode"],
                "oom_killed": bool(state["OOMKilled"]),
            }
        if time.monotonic() > deadline:
            raise ToolError(f"container {container.name} still runs {EXIT_TIMEOUT_S:.0f} s after {what}")
        time.sleep(_POLL_S)


def _running_container(client: docker.DockerClient, resource: Resource) -> Container:
    container = get_container(client, resource)
    if not _running(container):
        raise ToolError(f"container {container.name} is {container_state(container)['Status']}, not running")
    return container


def crash_container(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """SIGKILL the main process through the engine: it exits 137, as after a crash.

    The engine counts a kill as a deliberate stop, so a restart policy does not bring
    the container back: it stays down until something (OpsGraph) restarts it.
    """
    with docker_client() as client:
        container = _running_container(client, resource)
        container.kill(signal="SIGKILL")
        return _wait_for_exit(container, "SIGKILL")


def oom_kill_container(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Exhaust the container's memory limit from inside it until the kernel OOM killer ends its main process.

    A process started in the container (busybox `sh`, `head`, `tr`) holds twice the
    limit in memory. The main process is first made the OOM killer's preferred
    victim (raising `oom_score_adj` needs no privilege), so the kill lands on the
    workload, as when the workload itself is what grows. Refused without a memory
    limit: that would exhaust the host instead.
    """
    with docker_client() as client:
        container = _running_container(client, resource)
        host_config = container.attrs["HostConfig"]
        limit = int(host_config.get("Memory") or 0)
        if limit <= 0:
            raise ToolError(f"container {container.name} has no memory limit; an OOM kill needs one to press against")
        ceiling = max(limit, int(host_config.get("MemorySwap") or 0))
        grab_mb = 2 * ceiling // MB + 1
        script = f'echo 1000 > /proc/1/oom_score_adj && x=$(head -c {grab_mb}m /dev/zero | tr "\\0" x) && echo ${{#x}}'
        exit_code, output = container.exec_run(["sh", "-c", script])
        result = _wait_for_exit(container, f"holding {grab_mb} MiB against a {limit // MB} MiB limit")
        if not result["oom_killed"]:
            raise ToolError(
                f"container {container.name} stopped but not by the OOM killer ({result}); "
                f"the memory hog ended with {exit_code}: {output.decode(errors='replace')[-200:]}"
            )
        return {**result, "memory_limit_mb": limit // MB, "allocated_mb": grab_mb}


SCENARIOS = [
    Scenario(
        name="container-crash",
        target_kind=ResourceKind.CONTAINER,
        description="SIGKILL the container's main process so that it exits non-zero and stays down",
        inject=crash_container,
    ),
    Scenario(
        name="container-oom",
        target_kind=ResourceKind.CONTAINER,
        description="exhaust the container's memory limit until the kernel OOM killer ends it (needs sh in the image)",
        inject=oom_kill_container,
    ),
]
