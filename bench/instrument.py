"""Split a graph run's wall time into tool I/O (probes, tool calls, waits) and the graph's own overhead.

Wraps the two doors through which OpsGraph touches infrastructure — the probe table
and the tool catalogue — plus `time.sleep` (the verifier's pause between probes), and
adds up the seconds spent behind them. Whatever remains of a run's wall time is
LangGraph, checkpointing, the ledger and our node logic.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from opsgraph.tools import catalogue, probes

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class IoClock:
    seconds: float = 0.0

    def timed(self, func: Callable[P, R]) -> Callable[P, R]:
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return wrapper


@contextmanager
def io_clock() -> Iterator[IoClock]:
    """Count time spent in probes, tool calls and sleeps while the block runs."""
    clock = IoClock()
    saved_probes = dict(probes._PROBES)
    saved_catalogue = dict(catalogue.CATALOGUE)
    saved_sleep = time.sleep
    try:
        for kind, func in saved_probes.items():
            probes._PROBES[kind] = clock.timed(func)
        for name, spec in saved_catalogue.items():
            wrapped: Any = dataclasses.replace(spec, run=clock.timed(spec.run))
            catalogue.CATALOGUE[name] = wrapped
        time.sleep = clock.timed(saved_sleep)
        yield clock
    finally:
        probes._PROBES.update(saved_probes)
        catalogue.CATALOGUE.update(saved_catalogue)
        time.sleep = saved_sleep
