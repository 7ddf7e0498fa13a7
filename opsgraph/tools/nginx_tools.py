"""Nginx tools (being written for issue 4)."""

from __future__ import annotations

from typing import Any

from opsgraph.tools.spec import ToolSpec

TOOLS: list[ToolSpec[Any]] = []
