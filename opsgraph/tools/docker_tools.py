"""Docker tools: restart, scale, logs, stats and resource limits of containers, through the engine's API.

They act on `kind: container` resources (`environment: docker`); the container is
`docker.container` (else the resource's name) and a scalable service is every
container labelled `opsgraph.service=<docker.service_label>`. Expected failures (no
engine, no container, a refused change) are `ToolError`s, i.e. data for the graph.
"""

from __future__ import annotations

from typing import Annotated, Any

import docker
from docker.models.containers import Container
from pydantic import Field, model_validator

from opsgraph.tools.environments.docker import (
    REPLICA_LABEL,
    SERVICE_LABEL,
    DockerEnvironment,
    container_state,
    docker_client,
    get_container,
    service_containers,
)
from opsgraph.tools.identity import server_identity
from opsgraph.tools.inventory import Environment, Resource, ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, ToolSpec, above_ceiling, declare

MB = 1024 * 1024
MAX_REPLICAS = 10
MIN_MEMORY_MB = 6  # the engine refuses smaller memory limits
MAX_LOG_LINES = 1000
MAX_LOG_LINE_CHARS = 500  # one runaway line (a dumped blob) must not flood the evidence
MAX_LOG_CHARS = 40_000
CPU_PERIOD_US = 100_000
# Containers are reached through a Docker engine: these tools act on docker resources only.
_DOCKER = frozenset({Environment.DOCKER})


def _memory_used(memory_stats: dict[str, Any]) -> int | None:
    """Memory in use as `docker stats` counts it: the cgroup's usage minus reclaimable page cache."""
    usage = memory_stats.get("usage")
    if usage is None:
        return None
    stats = memory_stats.get("stats", {})
    # cgroup v1 reports total_inactive_file, cgroup v2 inactive_file.
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    return int(usage) - int(inactive) if inactive < usage else int(usage)


def _cpu_pct(sample: dict[str, Any]) -> float | None:
    """CPU use between a sample's two readings, in % of one CPU (as `docker stats` shows it)."""
    before, after = sample.get("precpu_stats") or {}, sample["cpu_stats"]
    if not before.get("cpu_usage"):
        return None
    cpu_delta = after["cpu_usage"]["total_usage"] - before["cpu_usage"]["total_usage"]
    system_delta = (after.get("system_cpu_usage") or 0) - (before.get("system_cpu_usage") or 0)
    if system_delta <= 0:
        return None
    cpus = int(after.get("online_cpus") or len(after["cpu_usage"].get("percpu_usage") or []) or 1)
    return round(100.0 * float(cpu_delta) / float(system_delta) * cpus, 2)


def configured_cpus(host_config: dict[str, Any]) -> float | None:
    """The CPU limit set on the container (NanoCpus or quota/period), None when unlimited."""
    if host_config.get("NanoCpus"):
        return float(host_config["NanoCpus"]) / 1e9
    if host_config.get("CpuQuota") and host_config["CpuQuota"] > 0:
        return float(host_config["CpuQuota"]) / float(host_config.get("CpuPeriod") or CPU_PERIOD_US)
    return None


def read_container(container: Container, *, memory: bool = True, cpu: bool = False) -> dict[str, Any]:
    """State, exit, OOM kill, restarts and (when running) memory and CPU use of one container.

    Usage comes from the engine's stats, which it publishes once a second: a one-shot
    sample for memory takes up to a second, CPU % (two samples a second apart) up to
    two. `memory=False` skips the stats for a state-only answer in milliseconds.
    """
    state = container_state(container)
    host_config = container.attrs["HostConfig"]
    limit = int(host_config.get("Memory") or 0)
    running = bool(state["Running"]) and not state["Restarting"]
    facts: dict[str, Any] = {
        "container": container.name,
        "image": container.attrs["Config"].get("Image"),
        "state": state["Status"],
        "running": running,
        "exit_code": state["ExitCode"],
        "oom_killed": bool(state["OOMKilled"]),
        "restart_count": int(container.attrs.get("RestartCount") or 0),
        "started_at": state.get("StartedAt"),
        "finished_at": state.get("FinishedAt"),
        "engine_error": state.get("Error") or None,
        "memory_limit_mb": round(limit / MB, 2) if limit else None,
        "cpus": configured_cpus(host_config),
        "memory_usage_mb": None,
        "memory_used_pct": None,
        "cpu_pct": None,
        "pids": None,
    }
    if not running or not (memory or cpu):
        return facts
    sample = container.stats(stream=False, one_shot=not cpu)
    used = _memory_used(sample.get("memory_stats") or {})
    if used is not None:
        facts["memory_usage_mb"] = round(used / MB, 2)
        facts["memory_used_pct"] = round(100.0 * used / limit, 2) if limit else None
    facts["pids"] = (sample.get("pids_stats") or {}).get("current")
    if cpu:
        facts["cpu_pct"] = _cpu_pct(sample)
    return facts


# ---- read tools


@declare(risk=Risk.READ, target=ResourceKind.CONTAINER, environments=_DOCKER, idempotent=True)
def docker_stats(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read a container's state, exit code, OOM kill, restart count, memory vs limit and CPU %."""
    with docker_client() as client:
        return read_container(get_container(client, ctx.resource(args.resource)), cpu=True)


class DockerLogsArgs(ToolArgs):
    lines: Annotated[int, Field(ge=1, le=MAX_LOG_LINES, description="How many of the last lines to return")] = 100


@declare(risk=Risk.READ, target=ResourceKind.CONTAINER, environments=_DOCKER, idempotent=True)
def docker_logs(args: DockerLogsArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read the last lines a container wrote to stdout and stderr (bounded).

    Each line and the whole answer are bounded in size: a log is untrusted and may be huge.
    """
    with docker_client() as client:
        container = get_container(client, ctx.resource(args.resource))
        raw: bytes = container.logs(tail=args.lines, stdout=True, stderr=True)
    lines = [
        line if len(line) <= MAX_LOG_LINE_CHARS else f"{line[:MAX_LOG_LINE_CHARS]}… [{len(line)} chars]"
        for line in raw.decode("utf-8", errors="replace").splitlines()
    ]
    kept: list[str] = []
    size = 0
    for line in reversed(lines):  # the newest lines matter most: drop from the oldest end
        size += len(line) + 1
        if size > MAX_LOG_CHARS:
            break
        kept.append(line)
    kept.reverse()
    return {"container": container.name, "lines": kept, "omitted_lines": len(lines) - len(kept)}


# ---- restart


class DockerRestartArgs(ToolArgs):
    stop_timeout_s: Annotated[int, Field(ge=0, le=120, description="Seconds between SIGTERM and SIGKILL")] = 10


@declare(
    risk=Risk.DISRUPTIVE, target=ResourceKind.CONTAINER, environments=_DOCKER, idempotent=False, observe=server_identity
)
def docker_restart(args: DockerRestartArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart a container (start it if it exited) and wait until it runs; in-memory state is lost.

    Waits for the health check too, when the container has one.
    """
    resource = ctx.resource(args.resource)
    with docker_client() as client:
        before = container_state(get_container(client, resource))
    status = DockerEnvironment(ctx.inventory).restart(resource.name, args.stop_timeout_s)
    return {
        "container": status.name,
        "previous_state": before["Status"],
        "previous_exit_code": before["ExitCode"],
        "previous_oom_killed": bool(before["OOMKilled"]),
        "state": status.state,
        "running": status.running,
        "pid": status.pid,
    }


# ---- scale


class DockerScaleArgs(ToolArgs):
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS, description="Wanted number of containers")]


def _clone(client: docker.DockerClient, template: Container, name: str) -> Container:
    """A new container like `template`: image, command, environment, labels, limits, network.

    Published ports and volumes are not copied: two replicas cannot bind one host port,
    and sharing a data volume between replicas is a decision, not a default.
    """
    config, host = template.attrs["Config"], template.attrs["HostConfig"]
    restart = host.get("RestartPolicy") or {}
    return client.containers.run(
        template.attrs["Image"],  # the image id: a moved tag must not change what a replica runs
        command=config.get("Cmd"),
        entrypoint=config.get("Entrypoint"),
        environment=config.get("Env"),
        working_dir=config.get("WorkingDir") or None,
        user=config.get("User") or None,
        labels={**(config.get("Labels") or {}), REPLICA_LABEL: template.name},
        name=name,
        detach=True,
        mem_limit=host.get("Memory") or None,
        memswap_limit=host.get("MemorySwap") or None,
        nano_cpus=host.get("NanoCpus") or None,
        cpu_period=host.get("CpuPeriod") or None,
        cpu_quota=host.get("CpuQuota") or None,
        network_mode=host.get("NetworkMode") or None,
        restart_policy={"Name": restart["Name"], "MaximumRetryCount": restart.get("MaximumRetryCount", 0)}
        if restart.get("Name")
        else None,
        init=host.get("Init"),
    )


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.CONTAINER,
    environments=_DOCKER,
    idempotent=True,
    undo="docker_scale with replicas = previous_replicas from the result",
)
def docker_scale(args: DockerScaleArgs, ctx: ToolContext) -> dict[str, Any]:
    """Set the number of containers of a service (opsgraph.service label): new replicas clone the first
    container; the newest are removed first. At most 10.

    The label is SERVICE_LABEL and the bound MAX_REPLICAS; tests/tools/test_declare.py keeps this text in step.
    """
    resource = ctx.resource(args.resource)
    label = resource.docker.service_label
    if label is None:
        raise ToolError(f"resource {resource.name!r} has no docker.service_label: nothing identifies its replicas")
    with docker_client() as client:
        replicas = service_containers(client, label)
        if not replicas:
            raise ToolError(f"no container is labelled {SERVICE_LABEL}={label}: nothing to clone")
        previous = len(replicas)
        created: list[str] = []
        removed: list[str] = []
        names = {container.name for container in replicas}
        index = 1
        while len(replicas) < args.replicas:
            while f"{label}-{index}" in names:
                index += 1
            name = f"{label}-{index}"
            names.add(name)
            replicas.append(_clone(client, replicas[0], name))
            created.append(name)
        while len(replicas) > args.replicas:  # never the first: it is the template of the others
            newest = replicas.pop()
            newest.remove(force=True)
            removed.append(newest.name)
        for container in replicas:
            container.reload()
        return {
            "service": label,
            "previous_replicas": previous,
            "replicas": len(replicas),
            "created": created,
            "removed": removed,
            "running": sum(1 for container in replicas if container_state(container)["Running"]),
        }


# ---- resource limits


class DockerUpdateArgs(ToolArgs):
    memory_mb: Annotated[int | None, Field(ge=MIN_MEMORY_MB, description="New memory limit in MiB (no swap added)")] = (
        None
    )
    cpus: Annotated[float | None, Field(gt=0, le=256, description="New CPU limit, in CPUs (e.g. 0.5)")] = None

    @model_validator(mode="after")
    def _something_to_change(self) -> DockerUpdateArgs:
        if self.memory_mb is None and self.cpus is None:
            raise ValueError("give memory_mb, cpus or both")
        return self


def _memory_ceiling(args: DockerUpdateArgs, resource: Resource) -> str | None:
    if args.memory_mb is None:
        return None
    return above_ceiling("memory_mb", args.memory_mb, resource.policy.max_memory_mb, " MiB")


def _limits_body(args: DockerUpdateArgs, host_config: dict[str, Any]) -> dict[str, int]:
    """The engine's update request: memory with swap kept as it was, CPUs in the form already in use."""
    body: dict[str, int] = {}
    if args.memory_mb is not None:
        memory = args.memory_mb * MB
        old_memory, old_swap = int(host_config.get("Memory") or 0), int(host_config.get("MemorySwap") or 0)
        body["Memory"] = memory
        # MemorySwap is memory + swap: keep the swap share; -1 (unlimited) stays; unset means no swap,
        # else the engine adds as much swap as memory and a memory limit stops being one.
        body["MemorySwap"] = -1 if old_swap == -1 else memory + max(0, old_swap - old_memory)
    if args.cpus is not None:
        # The engine refuses to mix the two forms on one container.
        if host_config.get("CpuQuota"):
            body["CpuPeriod"] = CPU_PERIOD_US
            body["CpuQuota"] = round(args.cpus * CPU_PERIOD_US)
        else:
            body["NanoCpus"] = round(args.cpus * 1e9)
    return body


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.CONTAINER,
    environments=_DOCKER,
    idempotent=True,
    undo="docker_update with memory_mb = previous_memory_mb and cpus = previous_cpus from the result",
    check_limits=_memory_ceiling,
)
def docker_update(args: DockerUpdateArgs, ctx: ToolContext) -> dict[str, Any]:
    """Change a container's memory limit (MiB) and/or CPU limit in place.

    No restart is needed to apply them.
    """
    with docker_client() as client:
        container = get_container(client, ctx.resource(args.resource))
        facts = read_container(container)
        host_config = container.attrs["HostConfig"]
        used_mb = facts["memory_usage_mb"]
        if args.memory_mb is not None and used_mb is not None and args.memory_mb <= used_mb:
            raise ToolError(
                f"memory limit {args.memory_mb} MiB would be at or below current usage ({used_mb:.1f} MiB); "
                "refusing to force an OOM kill"
            )
        # docker-py's update_container cannot send NanoCpus; this is the request it makes, with them.
        api = client.api
        body = _limits_body(args, host_config)
        response = api._post_json(api._url("/containers/{0}/update", container.id), data=body)
        api._raise_for_status(response)
        container.reload()
        after = container.attrs["HostConfig"]
    memory = int(after.get("Memory") or 0)
    return {
        "container": container.name,
        "previous_memory_mb": facts["memory_limit_mb"],
        "memory_mb": round(memory / MB, 2) if memory else None,
        "previous_cpus": facts["cpus"],
        "cpus": configured_cpus(after),
        "memory_usage_mb": used_mb,
    }


TOOLS: list[ToolSpec[Any]] = [docker_stats, docker_logs, docker_restart, docker_scale, docker_update]
