"""docker-compose.yml validates with the real compose tool and wires health checks and secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = (
        subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if shutil.which("docker")
        else None
    )
    if probe is not None and probe.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("no compose tool: install it with `apt-get install docker-compose` (make test does this as root)")


def config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"], **env}, cwd=ROOT, check=False,
    )  # fmt: skip


def test_compose_file_is_valid_and_complete() -> None:
    result = config({"POSTGRES_PASSWORD": "example-only", "SHOP_DB_PASSWORD": "example-only-too"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"redis", "postgres", "sample-app", "nginx", "opsgraph"}
    for name, service in services.items():
        if name != "opsgraph":
            assert "healthcheck" in service, name
    assert services["sample-app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["sample-app"]["condition"] == "service_healthy"
    assert "watch" in services["opsgraph"]["command"]


def test_missing_secret_fails_loudly() -> None:
    result = config({})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_compose_inventory_is_valid() -> None:
    from opsgraph.tools.inventory import load_inventory

    inventory = load_inventory(ROOT / "deploy" / "opsgraph.compose.yaml")
    assert {r.name for r in inventory.resources} == {"cache", "db", "shop", "edge", "shop-container"}
