"""Tool outputs shrunk to a size budget before a model reads them: structure kept, bulk cut.

`compact` renders a value as JSON. When that is too long it tightens, step by step,
the length allowed for strings, the items kept from lists, the keys kept from
mappings and the nesting depth — each cut leaves a visible marker (`…[+N chars]`,
`"…+N more items"`) so the model knows something was left out. The result never
exceeds the budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

_MIN_BUDGET = 16


@dataclass(frozen=True)
class _Limits:
    string: int
    items: int
    keys: int
    depth: int

    def tighter(self) -> _Limits | None:
        if self.string > 40:
            return _Limits(max(40, self.string // 2), self.items, self.keys, self.depth)
        if self.items > 3:
            return _Limits(self.string, max(3, self.items // 2), self.keys, self.depth)
        if self.keys > 8:
            return _Limits(self.string, self.items, max(8, self.keys // 2), self.depth)
        if self.depth > 2:
            return _Limits(self.string, self.items, self.keys, self.depth - 1)
        if self.string > 16 or self.items > 1 or self.keys > 2:
            return _Limits(max(16, self.string // 2), max(1, self.items - 1), max(2, self.keys // 2), self.depth)
        return None


_START = _Limits(string=4000, items=100, keys=200, depth=8)


def _shrink(value: object, limits: _Limits, depth: int = 0) -> Any:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, str):
        if len(value) <= limits.string:
            return value
        return f"{value[: limits.string]}…[+{len(value) - limits.string} chars]"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        if depth >= limits.depth:
            return f"{{…{len(value)} keys}}"
        items = list(value.items())
        shrunk: dict[str, Any] = {str(k): _shrink(v, limits, depth + 1) for k, v in items[: limits.keys]}
        if len(items) > limits.keys:
            shrunk["…"] = f"+{len(items) - limits.keys} more keys"
        return shrunk
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        if depth >= limits.depth:
            return f"[…{len(seq)} items]"
        kept = [_shrink(v, limits, depth + 1) for v in seq[: limits.items]]
        if len(seq) > limits.items:
            kept.append(f"…+{len(seq) - limits.items} more items")
        return kept
    return _shrink(repr(value), limits, depth)


def _render(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def compact(value: object, budget_chars: int) -> str:
    """A JSON rendering of `value` no longer than `budget_chars` characters."""
    budget = max(budget_chars, _MIN_BUDGET)
    limits: _Limits | None = _START
    text = ""
    while limits is not None:
        text = _render(_shrink(value, limits))
        if len(text) <= budget:
            return text
        limits = limits.tighter()
    marker = f"…[{len(text)} chars]"
    if len(marker) >= budget:
        return text[:budget]
    return text[: budget - len(marker)] + marker
