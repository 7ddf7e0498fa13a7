"""Fault: CPU saturation inside the app process, which makes every request slower.

Threads run a pure-Python loop, so they compete with the event loop for the GIL
(not just for a core): each time the event loop wakes (a socket ready, a query
answered) it must wait for a burner to hand the GIL over, which takes up to the
5 ms switch interval, and a request wakes the loop several times. Latency of
``/products`` rises by tens of milliseconds on any machine. Burner *processes*
would only share the cores and, on a multi-core host, barely move latency.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from shop.errors import FaultActive
from shop.logs import log_event

MAX_DURATION_S = 300
MAX_THREADS = 16
_JOIN_S = 2.0


@dataclass
class _Burn:
    stop: threading.Event
    threads: list[threading.Thread]
    deadline: float  # time.monotonic()


def _burn(stop: threading.Event, deadline: float) -> None:
    while not stop.is_set() and time.monotonic() < deadline:
        total = 0
        for number in range(20_000):
            total += number * number


class CpuBurn:
    def __init__(self) -> None:
        self._burn: _Burn | None = None

    def _active(self) -> _Burn | None:
        burn = self._burn
        if burn is not None and not any(thread.is_alive() for thread in burn.threads):
            self._burn = burn = None  # it ran its course
        return burn

    def start(self, duration_s: float, threads: int) -> dict[str, Any]:
        if self._active() is not None:
            raise FaultActive("CPU load is already injected; DELETE /load/cpu first")
        stop = threading.Event()
        deadline = time.monotonic() + duration_s
        workers = [
            threading.Thread(target=_burn, args=(stop, deadline), name=f"shop-cpu-burn-{index}", daemon=True)
            for index in range(threads)
        ]
        for worker in workers:
            worker.start()
        self._burn = _Burn(stop, workers, deadline)
        result = {"fault": "cpu", "threads": threads, "duration_s": duration_s}
        log_event(logging.WARNING, "fault_injected", **result)
        return result

    async def stop(self) -> dict[str, Any]:
        burn, self._burn = self._active(), None
        if burn is None:
            return {"fault": "cpu", "stopped": False}
        burn.stop.set()
        await asyncio.to_thread(_join, burn.threads)
        result = {"fault": "cpu", "stopped": True, "threads": len(burn.threads)}
        log_event(logging.INFO, "fault_reset", **result)
        return result

    def status(self) -> dict[str, Any] | None:
        burn = self._active()
        if burn is None:
            return None
        return {"threads": len(burn.threads), "remaining_s": round(max(0.0, burn.deadline - time.monotonic()), 1)}


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=_JOIN_S)
