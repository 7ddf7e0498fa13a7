"""The sample app (an `http` resource) as a supervised uvicorn process on loopback.

It reaches its database and cache through the inventory resources named by
`local.app_database` and `local.app_cache`; a password, if any, travels in the
child's environment (PGPASSWORD), never in a URL that could be logged.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from opsgraph.tools.environments.local.process import LOOPBACK, LocalStackError, Server
from opsgraph.tools.environments.local.supervisor import PROCESS_NAME


class SampleAppServer(Server):
    process_name = PROCESS_NAME
    graceful_signal = signal.SIGTERM  # the supervisor stops uvicorn, which drains and exits
    forceful_signal = signal.SIGKILL

    @property
    def log_path(self) -> Path:
        return self.folder / "app.log"

    @property
    def pid_path(self) -> Path:
        return self.folder / "supervisor.pid"

    def binaries(self) -> list[str]:
        if importlib.util.find_spec("shop") is None:
            raise LocalStackError(
                f"{self.label}: the sample app (package `shop`) is not installed in this Python; "
                "run `uv sync` in the OpsGraph project"
            )
        return []

    def _environment(self) -> dict[str, str]:
        local = self.resource.local
        if local.app_database is None or local.app_cache is None:
            raise LocalStackError(
                f"{self.label}: a local http resource runs the sample app and needs local.app_database "
                "and local.app_cache naming its postgres and redis resources"
            )
        db = self.inventory.get(local.app_database)
        database = db.connection
        cache = self.inventory.get(local.app_cache).connection
        role = db.local.app_user or database.user or "postgres"
        dbname = database.database or "postgres"
        environment = {
            **os.environ,
            "SHOP_DATABASE_URL": f"postgresql://{role}@{database.host}:{database.port}/{dbname}",
            "SHOP_REDIS_URL": f"redis://{cache.host}:{cache.port}/0",
        }
        if (password := database.password()) is not None:
            environment["PGPASSWORD"] = password
        return environment

    def start(self) -> None:
        uvicorn = [sys.executable, "-m", "uvicorn", "shop.app:create_app", "--factory",
                   "--host", LOOPBACK, "--port", str(self.port), "--no-access-log"]  # fmt: skip
        supervisor = [sys.executable, "-m", "opsgraph.tools.environments.local.supervisor",
                      "--pidfile", str(self.pid_path), "--log", str(self.log_path), "--", *uvicorn]  # fmt: skip
        with self.log_path.open("ab") as log:
            subprocess.Popen(
                supervisor, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._environment(), cwd=self.folder, start_new_session=True,
            )  # fmt: skip

    def answers(self) -> bool:
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
        try:
            connection.request("GET", self.resource.http.health_path)
            return connection.getresponse().status < 500
        except OSError:
            return False
        finally:
            connection.close()
