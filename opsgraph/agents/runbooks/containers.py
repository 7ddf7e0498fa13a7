"""Containers runbooks (being written for issue 4)."""

from __future__ import annotations

from opsgraph.agents.runbooks.common import Runbook

RUNBOOKS: dict[str, Runbook] = {}
