"""Secrets out of everything the model reads: the reasoner's own secrets plus the inventory's.

The inventory's passwords are read from the environment at each use, so a password
set after the reasoner was built is still masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from opsgraph.tools.inventory import Inventory
from opsgraph.tools.redaction import inventory_secrets, redact


class Scrubber:
    def __init__(self, inventory: Inventory | None, secrets: Iterable[str] = ()) -> None:
        self._inventory = inventory
        self._secrets = tuple(secrets)

    def _all_secrets(self) -> list[str]:
        found = list(self._secrets)
        if self._inventory is not None:
            found.extend(inventory_secrets(self._inventory))
        return found

    def clean(self, text: str) -> str:
        return redact(text, self._all_secrets())

    def clean_value(self, value: object) -> object:
        """Redact a structured value before it is cut, so no secret survives half-truncated."""
        rendered = json.dumps(value, default=str, ensure_ascii=False)
        cleaned = self.clean(rendered)
        try:
            return json.loads(cleaned)
        except json.JSONDecodeError:
            return cleaned
