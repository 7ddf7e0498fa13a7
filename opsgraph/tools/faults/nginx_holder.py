"""A detached client that keeps N keep-alive connections to nginx open: the connection-overload fault.

`opsgraph inject nginx-connection-overload` starts it and exits, so it runs on its own
(``python -m opsgraph.tools.faults.nginx_holder ...``, in its own session). Like a
client's connection pool it re-opens at once any connection the server closes, so the
load is real: only more capacity, or stopping the client, relieves it. It is bounded —
at most MAX_CONNECTIONS connections for at most MAX_LIFETIME_S — and leaves by itself when

- its lifetime is up (10 minutes unless told otherwise),
- it gets SIGTERM (`opsgraph.tools.faults.nginx.stop_connection_holder`),
- its state file is gone or names another process (state folder deleted, a newer holder),
- nginx has refused every connection for GONE_AFTER_S seconds (the stack was stopped).

Each connection is a slow client: it always has a request whose header is still
arriving, completed every `refresh` seconds and followed at once by the next one. An
idle keep-alive connection would not do: nginx closes those by itself ("worker_connections
are not enough, reusing connections") once fewer than 1/16 of its slots are free, so idle
clients can never take it past ~94 %. A request in progress cannot be reused, and each one
completes well inside client_header_timeout (60 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from opsgraph.tools.atomic_file import write_atomic

MAX_CONNECTIONS = 4096
MAX_LIFETIME_S = 3600.0
GONE_AFTER_S = 10.0
_RETRY_S = 0.5  # after nginx refused a connection
_REOPEN_S = 0.1  # between rounds of re-opening closed connections
_CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class HoldPlan:
    host: str
    port: int
    path: str
    count: int
    lifetime_s: float
    refresh_s: float
    state_file: Path

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_CONNECTIONS:
            raise ValueError(f"count must be 1..{MAX_CONNECTIONS}, got {self.count}")
        if not 0 < self.lifetime_s <= MAX_LIFETIME_S:
            raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME_S:.0f}] s, got {self.lifetime_s}")
        if not 0.2 <= self.refresh_s <= 60:
            raise ValueError(f"refresh must be 0.2..60 s, got {self.refresh_s}")


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} holder {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _still_mine(state_file: Path) -> bool:
    try:
        return int(json.loads(state_file.read_text())["pid"]) == os.getpid()
    except (OSError, ValueError, KeyError, TypeError):
        return False


class Holder:
    def __init__(self, plan: HoldPlan) -> None:
        self.plan = plan
        self.selector = selectors.DefaultSelector()
        self.open: set[socket.socket] = set()
        # A request line and headers without the blank line that ends them: nginx waits for more.
        self.partial = (
            f"GET {plan.path} HTTP/1.1\r\nHost: {plan.host}\r\nUser-Agent: opsgraph-connection-holder\r\n"
        ).encode()
        self.stopping = False

    def _connect(self) -> bool:
        """Open connections up to the count; False as soon as nginx refuses one."""
        while len(self.open) < self.plan.count:
            try:
                sock = socket.create_connection((self.plan.host, self.plan.port), timeout=_CONNECT_TIMEOUT_S)
                sock.sendall(self.partial)
            except OSError:
                return False
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, data=sock)
            self.open.add(sock)
        return True

    def _drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()
        self.open.discard(sock)

    def _drain(self, sock: socket.socket) -> None:
        """Discard what nginx answered; drop the connection if nginx closed it."""
        try:
            while sock.recv(65536):
                pass
        except BlockingIOError:
            return
        except OSError:
            pass  # reset by nginx: dropped below, like a clean close
        self._drop(sock)

    def _refresh(self) -> None:
        """Complete each pending request and start the next one in the same write."""
        for sock in list(self.open):
            try:
                sock.send(b"\r\n" + self.partial)
            except OSError:
                self._drop(sock)

    def run(self) -> str:
        """Hold the connections until a reason to stop; returns that reason."""
        plan = self.plan
        started = time.monotonic()
        last_held = started
        next_attempt = started
        next_refresh = started + plan.refresh_s
        while not self.stopping:
            now = time.monotonic()
            if now - started >= plan.lifetime_s:
                return f"lifetime of {plan.lifetime_s:.0f} s is up"
            if len(self.open) < plan.count and now >= next_attempt:
                # Paced: an nginx out of worker_connections accepts and closes at once.
                next_attempt = now + (_REOPEN_S if self._connect() else _RETRY_S)
            if self.open:
                last_held = now
            elif now - last_held >= GONE_AFTER_S:
                return f"nginx at {plan.host}:{plan.port} refused every connection for {GONE_AFTER_S:.0f} s"
            if now >= next_refresh:
                if not _still_mine(plan.state_file):
                    return f"{plan.state_file} is gone or names another holder"
                self._refresh()
                next_refresh = now + plan.refresh_s
            for key, _ in self.selector.select(timeout=0.2):
                self._drain(key.data)
        return "stopped by signal"

    def close(self) -> None:
        for sock in list(self.open):
            self._drop(sock)
        self.selector.close()


def hold(plan: HoldPlan) -> str:
    _raise_fd_limit(plan.count + 64)
    holder = Holder(plan)

    def stop(signum: int, _: object) -> None:
        holder.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    plan.state_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(
        plan.state_file,
        json.dumps(
            {
                "pid": os.getpid(),
                "target": f"{plan.host}:{plan.port}",
                "count": plan.count,
                "started_at": time.time(),
                "expires_at": time.time() + plan.lifetime_s,
            }
        ),
    )
    _say(f"holding {plan.count} connections to {plan.host}:{plan.port} for at most {plan.lifetime_s:.0f} s")
    try:
        reason = holder.run()
    finally:
        holder.close()
        if _still_mine(plan.state_file):
            plan.state_file.unlink(missing_ok=True)
    _say(f"exiting: {reason}")
    return reason


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/nginx_status")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--refresh", type=float, default=5.0)
    parser.add_argument("--state-file", type=Path, required=True)
    options = parser.parse_args(argv)
    try:
        plan = HoldPlan(
            options.host,
            options.port,
            options.path,
            options.count,
            options.lifetime,
            options.refresh,
            options.state_file.resolve(),
        )
    except ValueError as error:
        parser.error(str(error))
    hold(plan)


if __name__ == "__main__":
    main()
