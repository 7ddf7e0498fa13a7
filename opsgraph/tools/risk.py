"""Risk classes of tool steps, ordered from harmless to irreversible."""

from __future__ import annotations

from enum import StrEnum


class Risk(StrEnum):
    READ = "read"
    SAFE = "safe"
    DISRUPTIVE = "disruptive"
    DESTRUCTIVE = "destructive"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def exceeds(self, other: Risk) -> bool:
        return self.rank > other.rank


_ORDER = [Risk.READ, Risk.SAFE, Risk.DISRUPTIVE, Risk.DESTRUCTIVE]
