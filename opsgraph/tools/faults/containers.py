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


# A workload that sizes its working set from WORKING_SET_FILE (MiB; 4 when absent) and holds it in
# its main process, re-reading the file every second — as a service that loads its data set does.
# Its main process is the OOM killer's preferred victim, so memory that does not fit ends it.
WORKING_SET_FILE = "/working-set-mb"
WORKING_SET_WORKLOAD = [
    "sh",
    "-c",
    "trap 'exit 0' TERM; echo 1000 > /proc/1/oom_score_adj; echo started; while true; do "
    f"n=$(cat {WORKING_SET_FILE} 2>/dev/null || echo 4); "
    "x=$(dd if=/dev/zero bs=1M count=$n 2>/dev/null | tr '\\0' x); echo holding $n MiB; "
    "sleep 1 & wait $!; done",
]
# Of the memory limit: the working set then peaks at ~1.25x the limit (reading it takes twice its
# size), so it never fits, and fits in twice the limit with room to spare.
GROWN_SHARE = 0.625
CRASH_LOOP_RESTARTS = 2


def _restarts(container: Container) -> int:
    container.reload()
    return int(container.attrs["RestartCount"])


def grow_working_set(resource: Resource, ctx: ToolContext) -> dict[str, Any]:
    """Grow a WORKING_SET_WORKLOAD container's data past its memory limit: OOM-killed at every start.

    With a restart policy the engine restarts it and it is killed again — a crash loop —
    until the limit is raised; without one it stays down after the first kill.
    """
    with docker_client() as client:
        container = _running_container(client, resource)
        limit = int(container.attrs["HostConfig"].get("Memory") or 0)
        if limit <= 0:
            raise ToolError(f"container {container.name} has no memory limit; its working set cannot outgrow one")
        grown_mb = max(1, round(GROWN_SHARE * limit / MB))
        policy = (container.attrs["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
        before = _restarts(container)
        exit_code, output = container.exec_run(["sh", "-c", f"echo {grown_mb} > {WORKING_SET_FILE}"])
        if exit_code != 0:
            raise ToolError(f"cannot write {WORKING_SET_FILE} in {container.name}: {output.decode(errors='replace')}")
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        if policy in ("always", "unless-stopped", "on-failure"):
            while _restarts(container) < before + CRASH_LOOP_RESTARTS:
                if time.monotonic() > deadline:
                    raise ToolError(f"{container.name} did not crash-loop with a {grown_mb} MiB working set")
                time.sleep(_POLL_S)
            state = container_state(container)
            return {
                "container": container.name,
                "working_set_mb": grown_mb,
                "memory_limit_mb": limit // MB,
                "restart_policy": policy,
                "restarts": _restarts(container),
                "oom_killed": bool(state["OOMKilled"]),
            }
        return {**_wait_for_exit(container, f"a {grown_mb} MiB working set"), "working_set_mb": grown_mb}


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
    Scenario(
        name="container-crash-loop",
        target_kind=ResourceKind.CONTAINER,
        description=(
            "the working set of a container (the evals' working-set workload) grows past its memory limit: "
            "OOM-killed at every start, restarted by its restart policy, killed again"
        ),
        inject=grow_working_set,
    ),
]
