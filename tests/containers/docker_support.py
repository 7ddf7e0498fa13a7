"""Helpers for the container tests (the private engine itself is in this folder's conftest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docker.models.containers import Container

TEST_LABEL = "opsgraph.test"
# A long-running main process that ends at once on SIGTERM (a shell as PID 1 ignores it otherwise).
IDLE = ["sh", "-c", "trap 'exit 0' TERM; echo started; while true; do sleep 1 & wait $!; done"]
# `run_container(image="busybox"|"redis", command=[...], **docker_run_options)`
RunContainer = Callable[..., Container]
# Seconds spent on the engine's start, image builds and stop, reported at the end of the run.
TIMINGS: dict[str, float] = {}


def container_resource(name: str, container: str, **settings: Any) -> dict[str, Any]:
    """An inventory entry for a container of the private engine."""
    return {
        "name": name,
        "kind": "container",
        "environment": "docker",
        "docker": {"container": container, **settings.pop("docker", {})},
        "policy": {"max_memory_mb": 256, **settings.pop("policy", {})},
        **settings,
    }
