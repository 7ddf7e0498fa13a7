"""One redaction for everything OpsGraph emits: tool results, snapshots, ledger rows, JSON lines, logs, prompts.

It lives in the lowest layer so that every layer applies the same rules, at the
source where it can (the tool runner, the probes) and again at the last exits (the
ledger's JSON, the CLI's JSON lines and logs). Two kinds of masking:

- patterns: credentials in URLs (`scheme://user:pass@`), `password=` in a conninfo
  or an environment line, SQL `PASSWORD '...'` literals, auth headers, CLI flags and
  well-known key formats;
- known values, masked literally wherever they appear, whatever surrounds them: the
  value of every `password_env` variable of any inventory parsed in this process, and
  every secret setting (`opsgraph.settings`' `SecretStr` fields, the model API keys).

Known values are kept as variable *names* (registered when an inventory is parsed) and
read from the environment at each redaction, not copied when the inventory is loaded:
a password set or rotated afterwards is still masked. Settings are read the same way,
when asked. (The compiled pattern of the current values is cached, in this process only,
so that redaction stays one pass per text.)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, SecretStr

from opsgraph.settings import ENV_FILE_VARIABLE, load_settings

if TYPE_CHECKING:  # only a type: the inventory imports this module to register its variables
    from opsgraph.tools.inventory import Inventory

MASK = "[REDACTED]"

# Values shorter than this are not replaced literally: "a" or "1" would shred the text.
_MIN_LITERAL = 4

_KEY_NAMES = (
    r"(?:[a-z0-9_.-]*(?:password|passwd|pwd|passphrase|requirepass|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth)(?:[_-]?(?:key|value|string))?)"
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host  (postgres://, redis://, https://, amqp://, ...)
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+(?=@)", re.I), rf"\g<head>{MASK}"),
    # redis://:password@host has an empty user: covered above. Authorization headers:
    (re.compile(r"(?P<head>\bbearer\s+)[a-z0-9._~+/=-]{8,}", re.I), rf"\g<head>{MASK}"),
    # Basic credentials are base64 with a digit, + / or = in practice; "basic settings" is prose.
    (re.compile(r"(?P<head>\bbasic\s+)(?=[a-z]*[0-9+/=])[a-z0-9+/=]{8,}", re.I), rf"\g<head>{MASK}"),
    # SQL: CREATE/ALTER ROLE … [ENCRYPTED] PASSWORD '…' (a doubled '' is a quote inside the literal)
    (re.compile(r"(?P<head>\bpassword\s+)'(?:[^']|'')*'?", re.I), rf"\g<head>'{MASK}'"),
    # key=value / key: value / "key": "value" / KEY=value (env style, JSON, YAML, libpq DSN)
    (
        re.compile(
            rf"(?P<head>[\"']?\b{_KEY_NAMES}[\"']?\s*[:=]\s*)(?P<q>[\"']?)(?P<val>(?(q)[^\"'\n]+|[^\s,;&}}\]\"']+))",
            re.I,
        ),
        rf"\g<head>\g<q>{MASK}",
    ),
    # CLI flags: --password X, --token=X, -p is too ambiguous to touch
    (re.compile(rf"(?P<head>--{_KEY_NAMES}[ =])\S+", re.I), rf"\g<head>{MASK}"),
    # Well-known key formats
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),  # AWS access key id
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK),  # Google API key
    (re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"), MASK),  # OpenAI / Anthropic style
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), MASK),  # GitHub tokens
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),  # Slack tokens
    (re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), MASK),  # Google OAuth access token
    # The GCP emulator's access tokens ("emulator-" + 32 url-safe characters): a word like
    # "emulator-backed" has no digit or capital, a token has.
    (re.compile(r"\bemulator-(?=[A-Za-z_-]*[0-9A-Z])[0-9A-Za-z_-]{24,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # JWT
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        MASK,
    ),
]

# A mapping's key that names a secret ({"requirepass": "…"}, {"api_key": "…"}): its text value is masked
# whole, as the key=value pattern would in the same data rendered as text.
_SECRET_KEY = re.compile(_KEY_NAMES, re.I)

# Something every pattern above needs (lower-cased; a superset): most text holds none of these,
# and a few substring checks are far cheaper than trying each pattern at every position.
_TRIGGERS = (
    "://", "bearer", "basic", "pass", "pwd", "secret", "token", "apikey", "api_key", "api-key",
    "accesskey", "access_key", "access-key", "privatekey", "private_key", "private-key", "credential", "auth",
    "akia", "asia", "aiza", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "ya29.", "eyj", "-----begin",
    "emulator-",
)  # fmt: skip


# Names of the environment variables that hold secrets (inventories' password_env). Rebound,
# never mutated, so a reader in another thread always sees a whole set.
_secret_variables: frozenset[str] = frozenset()


def register_secret_variables(names: Iterable[str | None]) -> None:
    """Remember variables whose values are secrets (an inventory's `password_env`s), for every later redaction."""
    global _secret_variables
    new = {name for name in names if name} - _secret_variables
    if new:
        _secret_variables = _secret_variables | new


def known_secrets() -> list[str]:
    """The secret values now: every registered variable's value, and every secret setting."""
    values = [os.environ.get(name) for name in _secret_variables]
    return [value for value in (*values, *_secret_settings()) if value]


def _secret_settings() -> tuple[str, ...]:
    """The values of the settings' `SecretStr` fields, loaded again only when a source changed.

    Loading the settings costs milliseconds and redaction runs on every output, so the
    values are kept until the environment, the working directory or the `.env` file changes.
    """
    env_file = Path(os.environ.get(ENV_FILE_VARIABLE) or ".env")
    try:
        stamp: int | None = env_file.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _load_secret_settings((os.getcwd(), str(env_file), stamp, hash(frozenset(os.environ.items()))))


@lru_cache(maxsize=1)
def _load_secret_settings(sources: tuple[str, str, int | None, int]) -> tuple[str, ...]:
    """`sources` only keys the cache (where the settings come from, and their state)."""
    settings = load_settings()
    values = (getattr(settings, name) for name in type(settings).model_fields)
    return tuple(value.get_secret_value() for value in values if isinstance(value, SecretStr))


def inventory_secrets(inventory: Inventory) -> list[str]:
    """The secret values the inventory points at (`password_env`), read from the environment now."""
    return [value for resource in inventory.resources if (value := resource.connection.password())]


@lru_cache(maxsize=32)
def _literal_pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    """One alternation of every literal (longest first, so a secret containing another goes whole)."""
    forms = {form for value in values for form in (value, json.dumps(value)[1:-1])}  # raw and JSON-escaped
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


T = TypeVar("T")


class _Redactor:
    """The masking of one call: the literal values are looked up once, then every string is cleaned."""

    def __init__(self, extra_secrets: Iterable[str], by_key: bool = True) -> None:
        literals = frozenset(s for s in (*known_secrets(), *extra_secrets) if len(s) >= _MIN_LITERAL)
        self._literals = _literal_pattern(literals)
        self._by_key = by_key

    def text(self, text: str) -> str:
        # Literal values first: a password must vanish even where no pattern would spot it.
        cleaned = self._literals.sub(MASK, text) if self._literals is not None else text
        lowered = cleaned.lower()
        if any(trigger in lowered for trigger in _TRIGGERS):
            for pattern, replacement in _PATTERNS:
                cleaned = pattern.sub(replacement, cleaned)
        return text if cleaned == text else cleaned  # unchanged: the very object (a StrEnum stays one)

    def value(self, value: T) -> T:
        result: Any
        if isinstance(value, str):
            result = self.text(value)
        elif isinstance(value, dict):
            result = {self.value(key): self._item(key, item) for key, item in value.items()}
        elif isinstance(value, list):
            result = [self.value(item) for item in value]
        elif isinstance(value, tuple):
            result = tuple(self.value(item) for item in value)
        elif isinstance(value, BaseModel):
            # Field by field, keeping the model's type (a ToolOutcome stays a ToolOutcome).
            result = value.model_copy(
                update={name: self.value(getattr(value, name)) for name in type(value).model_fields}
            )
        else:  # numbers, None, enums, paths: nothing a secret could hide in
            result = value
        return result  # type: ignore[no-any-return]

    def _item(self, key: object, item: T) -> T:
        if self._by_key and isinstance(key, str) and isinstance(item, str) and item and _SECRET_KEY.fullmatch(key):
            return MASK  # type: ignore[return-value]  # a str either way
        return self.value(item)


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """`text` with credentials, tokens, every known secret and every literal in `extra_secrets` masked."""
    return _Redactor(extra_secrets).text(text)


def redact_value(value: T, extra_secrets: Iterable[str] = (), *, by_key: bool = True) -> T:
    """A redacted copy of `value`: strings in dicts, lists, tuples and pydantic models (same types back).

    `by_key=False` keeps text under secret-named keys unless a pattern or a known value masks it:
    for records whose own fields are named so but are not secrets (a lease's `token`).
    """
    return _Redactor(extra_secrets, by_key).value(value)
