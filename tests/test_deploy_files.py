"""The shipped deployment files: Prometheus' and Alertmanager's configs checked by their own tools and a
real Alertmanager, Grafana's provisioning against the dashboard, and the systemd unit against systemd's
own parser and security analyser."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prom_support import alertmanager as run_alertmanager
from serve.receivers import Receiver, opsgraph_stand_in
from support import wait_for

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
UNIT = DEPLOY / "systemd" / "opsgraph.service"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (make test installs it as root)")
    return path


def test_promtool_accepts_the_prometheus_config_and_the_rules_it_loads() -> None:
    """Run on the repository's file: `rule_files` is relative, so it reads deploy/prometheus/opsgraph-rules.yml,
    the same file compose mounts beside the config in the container."""
    result = subprocess.run(
        [tool("promtool", "prometheus"), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout  # opsgraph-rules.yml and resource-rules.yml


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run(
        [tool("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    """Where the shipped config sends alerts: a local receiver recording path, headers and body."""
    with opsgraph_stand_in() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(tmp_path: Path, webhook: Receiver) -> Iterator[tuple[str, Path]]:
    """A real Alertmanager on the shipped config, with only the webhook's address, the token file's path and
    group_interval (1 m, how soon a resolution is posted) changed. Yields its URL and the token file."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    (hook,) = (hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", []))
    assert hook["url"] == "http://opsgraph:8080/alerts/alertmanager"
    hook["url"] = f"{webhook.url}/alerts/alertmanager"
    token_file = tmp_path / "alertmanager-token"
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    config["route"]["group_interval"] = "1s"
    with run_alertmanager(tmp_path / "alertmanager", config) as running:
        yield running.url, token_file


def post_alert(url: str, labels: dict[str, str], **times: str) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=json.dumps([{"labels": labels, **times}]).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_alertmanager_posts_firing_and_resolved_alerts_to_opsgraph_with_the_token_file(
    alertmanager: tuple[str, Path], webhook: Receiver
) -> None:
    url, token_file = alertmanager
    token_file.write_text("first-token-of-at-least-16-chars\n")  # as `print(...) > file` writes it
    labels = {"alertname": "OpsGraphDown", "job": "opsgraph", "instance": "opsgraph:8080", "severity": "critical"}
    post_alert(url, labels, startsAt=datetime.now(UTC).isoformat())
    first = wait_for(lambda: webhook.requests and webhook.requests[0], "the firing alert", 30)
    assert first.path == "/alerts/alertmanager"
    assert first.headers["Authorization"] == "Bearer first-token-of-at-least-16-chars"  # the newline trimmed
    assert first.json()["status"] == "firing" and first.json()["alerts"][0]["labels"] == labels

    # A new token in the file is used from the next request on: rotation needs no restart.
    token_file.write_text("second-token-of-at-least-16-chars")
    post_alert(url, labels, endsAt=datetime.now(UTC).isoformat())
    resolved = wait_for(lambda: [r for r in webhook.requests if r.json()["status"] == "resolved"], "the resolution", 30)
    assert (resolved[0].path, resolved[0].headers["Authorization"]) == (
        "/alerts/alertmanager",
        "Bearer second-token-of-at-least-16-chars",
    )
    body = resolved[0].json()
    assert body["alerts"][0]["labels"] == labels and body["alerts"][0]["status"] == "resolved"


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    (prometheus,) = datasources["datasources"]
    assert (prometheus["type"], prometheus["uid"], prometheus["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )
    assert prometheus["isDefault"] is True


def datasource_references(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_references(item)


def test_the_provisioned_dashboard_finds_its_data_source() -> None:
    """Provisioning loads deploy/grafana/dashboards/opsgraph.json as it is: an exported dashboard's
    `${DS_...}` inputs are never filled in, so every panel must name the provisioned uid (or a datasource
    variable of the dashboard, or nothing: the default data source)."""
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {source["uid"] for source in datasources["datasources"]}
    dashboard = json.loads((DEPLOY / "grafana/dashboards/opsgraph.json").read_text())
    assert "__inputs" not in dashboard
    names = [v["name"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "datasource"]
    variables = {f"${name}" for name in names} | {f"${{{name}}}" for name in names}
    references = list(datasource_references(dashboard))
    assert references, "the dashboard names no data source"
    for reference in references:
        uid = reference.get("uid") if isinstance(reference, dict) else reference
        assert uid is None or uid in uids | variables or uid == "-- Grafana --", reference


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd's keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_runs_serve_as_a_hardened_service() -> None:
    service = unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/.venv/bin/opsgraph") and command[1] == "serve"
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert (options["--host"], options["--port"]) == ("127.0.0.1", "8080")
    state = options["--state-dir"]
    expected = {
        "Type": "exec",  # serve does not speak sd_notify
        "User": "opsgraph",
        "EnvironmentFile": "/etc/opsgraph/env",
        "WorkingDirectory": state,
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "45",  # compose's stop_grace_period: in-flight runs finish
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": state,
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart's program replaced by this checkout's `opsgraph` (systemd-analyze insists
    that the program exists; /opt/opsgraph is where the unit's comments install it)."""
    program = shlex.split(unit()["Service"]["ExecStart"])[0]
    here = Path(sys.executable).with_name("opsgraph")
    assert here.is_file()
    copy = tmp_path / "opsgraph.service"
    copy.write_text(UNIT.read_text().replace(f"ExecStart={program} ", f"ExecStart={here} "))
    assert copy.read_text() != UNIT.read_text()
    return copy


def test_systemd_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("systemd-analyze", "systemd"), "verify", str(installed_copy(tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_rates_the_unit_well_sandboxed(tmp_path: Path) -> None:
    result = subprocess.run(
        [tool("systemd-analyze", "systemd"), "security", "--offline=yes", str(installed_copy(tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    match = re.search(r"Overall exposure level for opsgraph\.service: ([\d.]+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    # 10 is no sandbox at all; the unit as shipped scores 1.9 (systemd 252). Above 3, hardening was lost.
    assert float(match[1]) <= 3.0, result.stdout
