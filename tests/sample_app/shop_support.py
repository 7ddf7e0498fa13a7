"""Helpers for the sample-app tests: the app as a real uvicorn process, and its stack.

The app is started the way its users start it, ``uvicorn shop.app:create_app
--factory``, with a database URL that carries a password so that tests can prove
it is never logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support import Stack, free_port

PASSWORD = "s3cr3t-Pa55w0rd"
MAX_CONNECTIONS = 50
REDIS_MAXMEMORY_MB = 32
# Small and fast, so that pool exhaustion and statement timeouts happen within a test.
APP_SETTINGS = {
    "SHOP_DB_POOL_MAX": "4",
    "SHOP_DB_POOL_TIMEOUT_S": "0.5",
    "SHOP_STATEMENT_TIMEOUT_MS": "1500",
    "SHOP_SLOW_QUERY_MS": "200",
}


@dataclass
class Shop:
    """A running app process, its HTTP client and its logs."""

    process: subprocess.Popen[bytes]
    http: httpx.Client
    log_file: Path
    output_file: Path

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON line the app has written to SHOP_LOG_FILE so far."""
        text = self.log_file.read_text()
        complete = text[: text.rfind("\n") + 1]  # the app may be writing the last line right now
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one sample in /metrics (0 when absent)."""
        response = self.http.get("/metrics")
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


def postgres_resource(port: int) -> dict[str, Any]:
    return {
        "name": "db",
        "kind": "postgres",
        "environment": "local",
        "connection": {"host": "127.0.0.1", "port": port, "user": "postgres", "database": "shop"},
        "local": {"max_connections": MAX_CONNECTIONS},
    }


def port_of(stack: Stack, name: str) -> int:
    return stack.inventory.get(name).connection.port


def app_environment(stack: Stack, log_file: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SHOP_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port_of(stack, 'db')}/shop",
        "SHOP_REDIS_URL": f"redis://127.0.0.1:{port_of(stack, 'cache')}/0",
        "SHOP_LOG_FILE": str(log_file),
        **APP_SETTINGS,
    }


@dataclass
class AppLauncher:
    """Starts app processes against the stack; stops whatever it started."""

    stack: Stack
    folder: Path

    def __post_init__(self) -> None:
        self.started: list[Shop] = []

    def start(self, name: str, environment: dict[str, str] | None = None) -> Shop:
        port = free_port()
        log_file = self.folder / f"{name}.jsonl"
        output_file = self.folder / f"{name}.out"
        env = environment if environment is not None else app_environment(self.stack, log_file)
        command = [sys.executable, "-m", "uvicorn", "shop.app:create_app", "--factory"]
        with output_file.open("wb") as output:
            process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        shop = Shop(process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), log_file, output_file)
        self.started.append(shop)
        self._wait_healthy(shop)
        return shop

    def stop(self, shop: Shop) -> int:
        shop.http.close()
        if shop.process.poll() is None:
            shop.process.terminate()
            try:
                shop.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                shop.process.kill()
                shop.process.wait(timeout=5)
        return shop.process.returncode

    def stop_all(self) -> None:
        for shop in self.started:
            self.stop(shop)

    @staticmethod
    def _wait_healthy(shop: Shop) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if shop.process.poll() is not None:
                raise RuntimeError(f"the app exited during startup:\n{shop.output_file.read_text()}")
            try:
                if shop.http.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.1)
        raise RuntimeError(f"the app never became healthy:\n{shop.output_file.read_text()}")
