"""Real Prometheus, Alertmanager and exporters for tests: private instances on free loopback ports.

Each context manager starts the Debian binary with its own config and data in `folder`, waits
until it answers (polling its HTTP API, no fixed sleep), yields a handle, and stops it at exit.
A missing binary fails the test with the apt-get line that installs it (`make setup` does).

    with prometheus(tmp_path / "prom", [scrape_job("opsgraph", address)], rule_files=[RULES]) as prom:
        prom.wait_for_target("opsgraph")
        prom.wait_for_alert("OpsGraphIncidentEscalated")

    with alertmanager(tmp_path / "am", {"route": {...}, "receivers": [...]}) as am, \\
         prometheus(tmp_path / "prom", jobs, rule_files=[RULES], alertmanager_url=am.url) as prom:
        ...

`Exposition` reads a `/metrics` body (sample values by name and labels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, wait_for

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
POSTGRES_EXPORTER = "/usr/bin/prometheus-postgres-exporter"
_PACKAGES = {
    PROMETHEUS: "prometheus",
    PROMTOOL: "prometheus",
    ALERTMANAGER: "prometheus-alertmanager",
    REDIS_EXPORTER: "prometheus-redis-exporter",
    POSTGRES_EXPORTER: "prometheus-postgres-exporter",
}
START_TIMEOUT_S = 30.0
T = TypeVar("T")


def binary(path: str) -> str:
    """The binary, or a failed test saying which Debian package installs it."""
    if shutil.which(path) is None:
        package = _PACKAGES.get(path, Path(path).name)
        pytest.fail(f"{path} is missing: install {package} (apt-get install {package}, or `make setup`)")
    return path


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS` (e.g. "check", "rules", FILE), its output captured."""
    command = [binary(PROMTOOL), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def scrape_job(job: str, *addresses: str, metrics_path: str = "/metrics") -> dict[str, Any]:
    """A static scrape config: `job` scraping `host:port` addresses."""
    return {"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": list(addresses)}]}


def address_of(url: str) -> str:
    """`host:port` of an `http://host:port` URL (what scrape and Alertmanager configs name)."""
    return urlsplit(url).netloc


@dataclass
class Prometheus:
    url: str
    folder: Path
    http: httpx.Client  # one client: a new one per call loads a TLS context each time (~0.1 s)

    def _get(self, path: str, **params: str) -> Any:
        response = self.http.get(f"{self.url}{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: HTTP {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {labels}, "value": [t, "v"]}, ...] (a vector)."""
        data = self._get("/api/v1/query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        assert isinstance(result, list)
        return result

    def value(self, expr: str) -> float | None:
        """The value of a query that gives at most one sample (None: no sample)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} gave {len(result)} samples: {result}"
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        """Every pending or firing alert of the loaded rules (/api/v1/alerts)."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule group (/api/v1/rules), with each rule's health and last error."""
        groups: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return groups

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets, each with its job (`labels.job`), `health` and `lastError`."""
        targets: list[dict[str, Any]] = self._get("/api/v1/targets")["activeTargets"]
        return targets

    def wait_for_target(self, job: str, timeout_s: float = 30) -> dict[str, Any]:
        """The first target of `job` once a scrape of it succeeded; the last error if none did in time."""

        def up() -> dict[str, Any] | None:
            found = [t for t in self.targets() if t["labels"].get("job") == job]
            return next((t for t in found if t["health"] == "up"), None)

        return _poll(up, timeout_s, lambda: f"a successful scrape of job {job}: targets {self.targets()}")

    def wait_for_alert(self, name: str, state: str = "firing", timeout_s: float = 30) -> dict[str, Any]:
        """The alert `name` once it is in `state` (pending or firing)."""

        def found() -> dict[str, Any] | None:
            return next((a for a in self.alerts() if a["labels"]["alertname"] == name and a["state"] == state), None)

        return _poll(found, timeout_s, lambda: f"alert {name} to be {state}: alerts {self.alerts()}")

    def wait_for_value(self, expr: str, wanted: Callable[[float], bool], timeout_s: float = 30) -> float:
        """The value of `expr` once `wanted(value)` holds (e.g. a scraped sample reached the TSDB)."""

        def check() -> tuple[float] | None:  # a tuple: a wanted 0 is an answer too
            value = self.value(expr)
            return (value,) if value is not None and wanted(value) else None

        [value] = _poll(check, timeout_s, lambda: f"{expr} to reach the wanted value: it is {self.value(expr)}")
        return value


@dataclass
class Alertmanager:
    url: str
    folder: Path
    http: httpx.Client

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (/api/v2/alerts), each with `labels`, `annotations`, `status`."""
        response = self.http.get(f"{self.url}/api/v2/alerts")
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()
        return alerts


@dataclass
class Exporter:
    url: str  # http://127.0.0.1:PORT

    @property
    def address(self) -> str:
        """`host:port`, for a scrape job."""
        return address_of(self.url)

    def metrics(self) -> Exposition:
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        response.raise_for_status()
        return Exposition(response.text)


class Exposition:
    """One `/metrics` body: the value of each sample, by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self._values = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    @property
    def sample_names(self) -> set[str]:
        """Every sample name, suffixes included (`_total`, `_bucket`, `_sum`, `_count`, `_info`)."""
        return {name for name, _ in self._values}

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels; None if it is not exposed."""
        return self._values.get((name, frozenset(labels.items())))

    def labelled(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of this name, by its labels."""
        return {labels: value for (sample, labels), value in self._values.items() if sample == name}


@contextmanager
def prometheus(
    folder: Path,
    scrape_configs: Iterable[Mapping[str, Any]],
    rule_files: Iterable[Path] = (),
    alertmanager_url: str | None = None,
    interval: str = "1s",
) -> Iterator[Prometheus]:
    """A Prometheus scraping `scrape_configs` and evaluating `rule_files` every `interval`,
    sending alerts to the Alertmanager at `alertmanager_url` if one is given."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [dict(job) for job in scrape_configs],
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
    }
    if alertmanager_url is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [address_of(alertmanager_url)]}]}]}
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    check = promtool("check", "config", config_file)
    assert check.returncode == 0, f"promtool check config:\n{check.stdout}{check.stderr}"
    port = free_port()
    command = [
        binary(PROMETHEUS),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with _running("prometheus", command, folder, f"{url}/-/ready"), httpx.Client(timeout=10) as http:
        yield Prometheus(url, folder, http)


@contextmanager
def alertmanager(folder: Path, config: Mapping[str, Any]) -> Iterator[Alertmanager]:
    """A single-node Alertmanager with `config` (route, receivers, ... as alertmanager.yml holds them)."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_port()
    command = [
        binary(ALERTMANAGER),
        f"--config.file={config_file}",
        f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: one node, no port of its own
    ]
    url = f"http://127.0.0.1:{port}"
    with _running("alertmanager", command, folder, f"{url}/-/ready"), httpx.Client(timeout=10) as http:
        yield Alertmanager(url, folder, http)


@contextmanager
def redis_exporter(folder: Path, redis_host: str, redis_port: int) -> Iterator[Exporter]:
    """prometheus-redis-exporter for the Redis at `redis_host:redis_port`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        binary(REDIS_EXPORTER),
        f"--redis.addr=redis://{redis_host}:{redis_port}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    url = f"http://127.0.0.1:{port}"
    with _running("redis-exporter", command, folder, f"{url}/metrics"):
        yield Exporter(url)


@contextmanager
def postgres_exporter(folder: Path, dsn: str) -> Iterator[Exporter]:
    """prometheus-postgres-exporter for the PostgreSQL at `dsn` (postgresql://user@host:port/db?sslmode=disable)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [binary(POSTGRES_EXPORTER), f"--web.listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATA_SOURCE_NAME": dsn}  # the exporter reads its DSN only from the environment
    with _running("postgres-exporter", command, folder, f"{url}/metrics", env):
        yield Exporter(url)


@contextmanager
def _running(
    name: str, command: list[str], folder: Path, ready_url: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` with its output in `folder/NAME.log` until the block ends; ready once `ready_url` answers 200."""
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env)
    try:
        with httpx.Client(timeout=2) as http:

            def ready() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    return http.get(ready_url).status_code == 200
                except httpx.HTTPError:
                    return False

            _poll(ready, START_TIMEOUT_S, lambda: f"{name} at {ready_url}:\n{log_path.read_text()[-3000:]}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _poll(condition: Callable[[], T | None], timeout_s: float, what: Callable[[], str]) -> T:
    """`support.wait_for`, with a failure that says what was seen last (`what()` is asked only then)."""
    try:
        value: T = wait_for(condition, "it", timeout_s)
    except AssertionError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what()}") from None
    return value
