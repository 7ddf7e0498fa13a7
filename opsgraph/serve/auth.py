"""Who may call `opsgraph serve`'s API: bearer tokens from `OPSGRAPH_API_TOKENS`, each with a scope.

`name:scope:token,...`. The scope says what a token may do — `read` looks (resources, incidents,
approvals, the catalogue, a scan); `ingest` posts alerts and nothing else (what Alertmanager
holds); `approve` does everything `read` does and answers approvals and starts fixes. The name is
the caller's identity: an answer carries it as `by`, and the approval node judges it against
`OPSGRAPH_ROLES` like any other answer, so a token does not bypass roles. Tokens are compared in
constant time and never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

MIN_TOKEN_CHARS = 16


class Scope(StrEnum):
    READ = "read"
    INGEST = "ingest"
    APPROVE = "approve"

    def allows(self, needed: Scope) -> bool:
        return self is needed or (self is Scope.APPROVE and needed is Scope.READ)


@dataclass(frozen=True)
class Caller:
    name: str
    scope: Scope


class TokensError(ValueError):
    """`OPSGRAPH_API_TOKENS` does not parse; the message names the entry, never its token."""


@dataclass(frozen=True)
class _Token:
    caller: Caller
    secret: bytes


class Tokens:
    """The API's callers, looked up by the token a request presents."""

    def __init__(self, text: str | None) -> None:
        self._tokens = _parse(text)

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def caller(self, presented: str) -> Caller | None:
        """The caller this token belongs to, or None. Every configured token is compared (constant time)."""
        found: Caller | None = None
        for token in self._tokens:
            if hmac.compare_digest(token.secret, presented.encode()):
                found = token.caller
        return found


def _parse(text: str | None) -> list[_Token]:
    if text is None or not text.strip():
        return []
    tokens: list[_Token] = []
    names: set[str] = set()
    for number, entry in enumerate(text.split(","), start=1):
        name, scope, secret = [*entry.strip().split(":", 2), "", ""][:3]
        where = f"OPSGRAPH_API_TOKENS entry {number}" + (f" ({name!r})" if name else "")
        if not name or scope not in Scope.__members__.values() or not secret:
            raise TokensError(f"{where} is not name:read|ingest|approve:token")
        if len(secret) < MIN_TOKEN_CHARS:
            raise TokensError(f"{where}: the token is shorter than {MIN_TOKEN_CHARS} characters")
        if name in names:
            raise TokensError(f"{where}: {name!r} is named twice")
        names.add(name)
        tokens.append(_Token(Caller(name, Scope(scope)), secret.encode()))
    return tokens
