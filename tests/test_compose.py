"""docker-compose.yml validates with the real compose tool and wires health checks and secrets."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    "ALERTMANAGER_TOKEN_FILE": "./example-only.token",
}


@functools.cache
def resolved() -> dict[str, Any]:
    """The compose file as the compose tool resolves it, with SECRETS (paths made absolute); read-only."""
    result = config(SECRETS)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts and volumes, container path -> source:mode."""
    pairs = (volume.rsplit(":", 2) for volume in service.get("volumes", []))
    return {target: f"{source}:{mode}" for source, target, mode in pairs}


def test_compose_file_is_valid_and_complete() -> None:
    services = resolved()["services"]
    assert set(services) == {
        "redis", "postgres", "sample-app", "nginx", "opsgraph", "chat",
        "prometheus", "alertmanager", "redis-exporter", "postgres-exporter", "grafana",
    }  # fmt: skip
    # The exporters have none (redis_exporter's image holds only its binary): Prometheus' `up` is theirs.
    for name, service in services.items():
        if name not in ("chat", "redis-exporter", "postgres-exporter"):
            assert "healthcheck" in service, name
    assert services["sample-app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["nginx"]["depends_on"]["sample-app"]["condition"] == "service_healthy"
    # Grafana is opt-in (an image not every user has); everything else starts by default.
    assert {name for name, service in services.items() if "profiles" in service} == {"grafana"}
    assert services["grafana"]["profiles"] == ["grafana"]
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
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


def option(command: list[str], name: str) -> str:
    """The value of `--name VALUE` or `--name=VALUE` in an argv."""
    for index, word in enumerate(command):
        if word == name:
            return command[index + 1]
        if word.startswith(name + "="):
            return word.partition("=")[2]
    raise AssertionError(f"{name} not in {command}")


def test_opsgraph_runs_serve_restarted_and_health_checked() -> None:
    opsgraph = resolved()["services"]["opsgraph"]
    command = opsgraph["command"]
    assert command[:2] == ["opsgraph", "serve"]
    assert (option(command, "--host"), option(command, "--port")) == ("0.0.0.0", "8080")
    assert opsgraph["ports"] == ["127.0.0.1:8080:8080/tcp"]
    assert opsgraph["restart"] == "unless-stopped"
    assert (opsgraph["stop_signal"], opsgraph["stop_grace_period"]) == ("SIGTERM", "45s")
    test = opsgraph["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]  # the image's Python: python:3.11-slim has no curl
    assert "'http://127.0.0.1:8080/healthz'" in test[3]


class HealthServer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}' if self.status == 200 else b'{"status": "stalled"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_healthcheck_fails_unless_healthz_answers_200(health_server: http.server.ThreadingHTTPServer) -> None:
    """The healthcheck's own command, run against a /healthz that answers 200, then 503, then nothing."""
    script = resolved()["services"]["opsgraph"]["healthcheck"]["test"][3]
    port = health_server.server_address[1]
    here = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")

    def check() -> int:
        return subprocess.run([sys.executable, "-c", here], capture_output=True, timeout=10, check=False).returncode

    HealthServer.status = 200
    assert check() == 0
    HealthServer.status = 503  # the watcher stopped sweeping
    assert check() != 0
    health_server.shutdown()
    health_server.server_close()
    assert check() != 0  # nothing listens


def test_prometheus_loads_exactly_the_shipped_config_and_rules() -> None:
    prometheus = resolved()["services"]["prometheus"]
    config_file = option(prometheus["command"], "--config.file")
    volumes = mounts(prometheus)
    assert volumes[config_file] == f"{ROOT}/deploy/prometheus/prometheus.yml:ro"
    # The config names its rules relative to itself, in the container as in deploy/prometheus/.
    rule_files = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["rule_files"]
    assert rule_files == ["opsgraph-rules.yml", "resource-rules.yml"]
    for rules in rule_files:
        assert volumes[str(Path(config_file).parent / rules)] == f"{ROOT}/deploy/prometheus/{rules}:ro"
    assert option(prometheus["command"], "--storage.tsdb.path") in volumes


def test_prometheus_targets_are_the_compose_services() -> None:
    """Every scrape target and Alertmanager is a service of this file on a port it listens on."""
    services = resolved()["services"]
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    listening = {
        "opsgraph": "8080", "prometheus": "9090", "alertmanager": "9093",
        "redis-exporter": "9121", "postgres-exporter": "9187",
    }  # fmt: skip
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert set(jobs) == {"opsgraph", "prometheus", "alertmanager", "redis", "postgres"}
    assert jobs["opsgraph"]["static_configs"] == [{"targets": ["opsgraph:8080"]}]
    assert jobs["opsgraph"].get("metrics_path", "/metrics") == "/metrics"
    assert prometheus["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]
    for job in jobs.values():
        for target in (t for group in job["static_configs"] for t in group["targets"]):
            host, port = target.rsplit(":", 1)
            name = "prometheus" if host == "127.0.0.1" else host  # Prometheus scrapes itself
            assert name in services and listening[name] == port, target
    for name in ("prometheus", "alertmanager"):
        assert services[name]["ports"] == [f"127.0.0.1:{listening[name]}:{listening[name]}/tcp"]
    assert services["redis-exporter"]["environment"]["REDIS_ADDR"] == "redis://redis:6379"
    assert services["postgres-exporter"]["environment"]["DATA_SOURCE_URI"].startswith("postgres:5432/shop")
    assert services["postgres-exporter"]["environment"]["DATA_SOURCE_PASS"] == SECRETS["POSTGRES_PASSWORD"]


def test_alertmanager_reads_its_token_from_the_compose_secret() -> None:
    document = resolved()
    alertmanager = document["services"]["alertmanager"]
    config_file = option(alertmanager["command"], "--config.file")
    assert mounts(alertmanager)[config_file] == f"{ROOT}/deploy/alertmanager/alertmanager.yml:ro"
    assert option(alertmanager["command"], "--cluster.listen-address") == ""  # one node, no gossip port
    assert alertmanager["secrets"] == [{"source": "alertmanager-token"}]  # mounted at /run/secrets/<source>
    assert document["secrets"]["alertmanager-token"]["file"] == str(ROOT / "example-only.token")
    shipped = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    (webhook,) = (hook for receiver in shipped["receivers"] for hook in receiver.get("webhook_configs", []))
    assert webhook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/alertmanager-token"


def test_alertmanager_will_not_start_without_its_token() -> None:
    result = config({k: v for k, v in SECRETS.items() if k != "ALERTMANAGER_TOKEN_FILE"})
    assert result.returncode != 0
    assert "ALERTMANAGER_TOKEN_FILE" in result.stderr


def test_grafana_is_provisioned_from_the_repository() -> None:
    services = resolved()["services"]
    grafana = services["grafana"]
    volumes = mounts(grafana)
    assert volumes["/etc/grafana/provisioning"] == f"{ROOT}/deploy/grafana/provisioning:ro"
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/opsgraph.yml").read_text())["providers"]
    assert [provider["type"] for provider in providers] == ["file"]
    assert volumes[providers[0]["options"]["path"]] == f"{ROOT}/deploy/grafana/dashboards:ro"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert grafana["ports"] == ["127.0.0.1:3000:3000/tcp"]
