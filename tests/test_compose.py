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


SECRETS = {
    "POSTGRES_PASSWORD": "example-only",
    "SHOP_DB_PASSWORD": "example-only-too",
    "CHAINLIT_AUTH_SECRET": "example-only-secret",
    "OPSGRAPH_CHAT_USERS": "alice:example-only-hash",
}


def test_compose_file_is_valid_and_complete() -> None:
    result = config(SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"redis", "postgres", "sample-app", "nginx", "opsgraph", "chat"}
    for name, service in services.items():
        if name not in ("opsgraph", "chat"):
            assert "healthcheck" in service, name
    assert services["sample-app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["sample-app"]["condition"] == "service_healthy"
    assert "watch" in services["opsgraph"]["command"]
    chat = services["chat"]
    assert chat["command"][:2] == ["opsgraph", "chat"]
    # The chat answers the watcher's approvals: same settings, same state volume.
    assert {k: v for k, v in chat["environment"].items() if k in services["opsgraph"]["environment"]} == services[
        "opsgraph"
    ]["environment"]
    assert chat["volumes"][0] == services["opsgraph"]["volumes"][0] == "opsgraph-state:/data:rw"


def test_the_chat_will_not_start_without_login() -> None:
    result = config({k: v for k, v in SECRETS.items() if k != "CHAINLIT_AUTH_SECRET"})
    assert result.returncode != 0
    assert "CHAINLIT_AUTH_SECRET" in result.stderr


def test_missing_secret_fails_loudly() -> None:
    result = config({})
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_compose_inventory_is_valid() -> None:
    from opsgraph.tools.inventory import load_inventory

    inventory = load_inventory(ROOT / "deploy" / "opsgraph.compose.yaml")
    assert {r.name for r in inventory.resources} == {"cache", "db", "shop", "edge", "shop-container"}
