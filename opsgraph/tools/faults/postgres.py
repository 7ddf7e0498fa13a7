"""Postgres fault scenarios (being written for issue 4)."""

from __future__ import annotations

from opsgraph.tools.faults.scenario import Scenario

SCENARIOS: list[Scenario] = []
