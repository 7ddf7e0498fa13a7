"""An nginx started OUTSIDE OpsGraph, the way users have one: its own prefix, nginx.conf, logs and pid file.

Everything lives under `<folder>/prefix/` (nginx's own layout: `conf/nginx.conf`,
`logs/`, temp paths in `tmp/`), started with `nginx -p PREFIX/ -c CONF` as its owner
would, never through OpsGraph's state folder. The config sets:

- `worker_shutdown_timeout 2s`: after a reload the old workers (and the connections they
  still hold) go within 2 s. Without it they keep a stalled client until its own timeout
  (client_body_timeout, 60 s by default), and a test that reloads would wait that long.
- `user root;` when the tests run as root: the workers would otherwise switch to `nobody`,
  who cannot write the root-owned temporary folders.
- `/upload`, proxied to a port where nothing listens: a request whose body never arrives
  waits there for its body (nginx reads the whole body before it proxies), holding one
  connection slot that nginx cannot reuse (stub_status counts it as "Writing"). That is
  how `hold_uploads` fills nginx.
  Clients that connect and send nothing cannot fill it: nginx closes such idle
  connections itself when it runs short ("worker_connections are not enough, reusing
  connections"), so a full nginx is one whose slots are taken by requests in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from support import child_pids, free_port, process_alive, wait_for

from opsgraph.tools.binaries import find_binary

_TIMEOUT_S = 30


def _config(prefix: Path, port: int, worker_connections: int) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {prefix / 'tmp' / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Hand-written, as its owner keeps it.
{user}worker_processes 1;
worker_shutdown_timeout 2s;
pid {prefix / "logs" / "nginx.pid"};
error_log {prefix / "logs" / "error.log"} notice;

events {{
    worker_connections {worker_connections};
}}

http {{
    access_log {prefix / "logs" / "access.log"};
{temp}

    server {{
        listen 127.0.0.1:{port};

        location = /nginx_status {{
            stub_status;
        }}

        location /upload {{
            proxy_pass http://127.0.0.1:1;
        }}

        location / {{
            return 200 "served by the outside nginx\\n";
        }}
    }}
}}
"""


@dataclass
class OutsideNginx:
    folder: Path
    worker_connections: int = 64
    port: int = field(default_factory=free_port)
    holders: list[socket.socket] = field(default_factory=list)

    @property
    def prefix(self) -> Path:
        return self.folder / "prefix"

    @property
    def config_file(self) -> Path:
        return self.prefix / "conf" / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "logs" / "nginx.pid"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"

    def argv(self, *extra: str) -> list[str]:
        """How its owner runs it (what an inventory's `external.commands` declare)."""
        return [str(find_binary("nginx")), "-p", f"{self.prefix}/", "-c", str(self.config_file), *extra]

    def resource(self, name: str = "web", **external: Any) -> dict[str, Any]:
        """Its inventory entry: environment external, its own paths, and whatever lifecycle the test gives."""
        paths = {
            "config_file": str(self.config_file),
            "pid_file": str(self.pid_file),
            "log_files": [str(self.error_log), str(self.access_log)],
        }
        return {
            "name": name,
            "kind": "nginx",
            "environment": "external",
            "connection": {"host": "127.0.0.1", "port": self.port},
            "external": {**external, "paths": paths},
        }

    def write_config(self) -> None:
        for sub in ("conf", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(_config(self.prefix, self.port, self.worker_connections))

    def start(self) -> None:
        result = subprocess.run(self.argv(), capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
        assert result.returncode == 0, f"nginx did not start: {result.stderr}"
        wait_for(self.serves, f"the outside nginx on port {self.port} to serve", _TIMEOUT_S)

    def serves(self) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=3)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and response.text == "served by the outside nginx\n"

    def listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(2)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def config_sha256(self) -> str:
        return hashlib.sha256(self.config_file.read_bytes()).hexdigest()

    def master_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def workers(self, master: int) -> list[int]:
        return child_pids(master)

    def kill(self) -> int:
        """A crash: SIGKILL the master AND its workers (orphaned workers would keep the port)."""
        master = self.master_pid()
        assert master is not None, "the outside nginx is not running"
        for pid in [master, *self.workers(master)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not self.listening(), "the killed nginx to stop listening", _TIMEOUT_S)
        return master

    def hold_uploads(self) -> list[socket.socket]:
        """Fill every client slot with uploads whose body never comes; the holders, once nginx is full.

        One at a time, each seen in stub_status's "Writing" before the next: a holder whose
        request nginx has not read yet is an idle connection, which nginx would close to make
        room for the next one. Full is when /nginx_status is accepted and closed unanswered.
        """
        for _ in range(self.worker_connections):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: outside\r\nContent-Length: 100000\r\n\r\n")
            self.holders.append(sock)
            if wait_for(self._full_or_counted, "nginx to take the upload", _TIMEOUT_S) == "full":
                return self.holders
        raise AssertionError(f"nginx took {len(self.holders)} uploads and still answers: not full")

    def _full_or_counted(self) -> str | None:
        """ "full" when nginx closes /nginx_status unanswered, "counted" once it counts every holder's request."""
        readable, _, _ = select.select(self.holders, [], [], 0)
        self.holders = [sock for sock in self.holders if sock not in readable]  # closed before nginx read it
        try:
            text = httpx.get(f"http://127.0.0.1:{self.port}/nginx_status", timeout=5).text
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "full"
        writing = re.search(r"Writing: (\d+)", text)
        assert writing is not None, text
        return "counted" if int(writing[1]) >= len(self.holders) + 1 else None  # +1: this request

    def stop(self) -> None:
        """Teardown: close the holders, fast shutdown (SIGTERM), then SIGKILL whatever is left."""
        for sock in self.holders:
            sock.close()
        master = self.master_pid()
        if master is None:
            return
        leftovers = [master, *self.workers(master)]
        os.kill(master, signal.SIGTERM)
        try:
            wait_for(lambda: not any(process_alive(pid) for pid in leftovers), "the outside nginx to stop", 10)
        finally:
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextmanager
def outside_nginx(folder: Path, worker_connections: int = 64) -> Iterator[OutsideNginx]:
    """A started outside nginx, stopped at teardown whatever the test did to it (restarts included)."""
    server = OutsideNginx(folder, worker_connections)
    server.write_config()
    try:
        server.start()
        yield server
    finally:
        server.stop()
