"""Secrets out of anything a model will read: credentials, tokens, key formats, known values.

Applied to every piece of text before it enters a prompt (incident, probe reasons,
tool output, operator feedback). Redaction is pattern-based plus exact values: the
passwords that the inventory names through `password_env` are read from the
environment and replaced wherever they appear, whatever the surrounding format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from opsgraph.tools.inventory import Inventory

MASK = "[REDACTED]"

# Values shorter than this are not replaced literally: "a" or "1" would shred the text.
_MIN_LITERAL = 4

_KEY_NAMES = (
    r"(?:[a-z0-9_.-]*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth)(?:[_-]?(?:key|value|string))?)"
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host  (postgres://, redis://, https://, amqp://, ...)
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)[^\s@/'\"]+(?=@)", re.I), rf"\g<head>{MASK}"),
    # redis://:password@host has an empty user: covered above. Authorization headers:
    (re.compile(r"(?P<head>\bbearer\s+)[a-z0-9._~+/=-]{8,}", re.I), rf"\g<head>{MASK}"),
    (re.compile(r"(?P<head>\bbasic\s+)[a-z0-9+/=]{8,}", re.I), rf"\g<head>{MASK}"),
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
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # JWT
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
        MASK,
    ),
]


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """`text` with credentials, tokens and every literal secret in `extra_secrets` masked."""
    # Literal values first: a password must vanish even where no pattern would spot it.
    for secret in sorted({s for s in extra_secrets if len(s) >= _MIN_LITERAL}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def inventory_secrets(inventory: Inventory) -> list[str]:
    """The secret values the inventory points at (`password_env`), read from the environment now."""
    secrets: list[str] = []
    for resource in inventory.resources:
        value = resource.connection.password()
        if value:
            secrets.append(value)
    return secrets
