"""Operators' chat passwords: salted scrypt hashes, their verification, and the user list of the settings.

The chat's login checks a name and password against `OPSGRAPH_CHAT_USERS`
(`alice:<hash>,bob:<hash>`), which holds hashes only, never a password: `opsgraph chat
hash-password` makes one. A hash reads `scrypt:N:r:p:<salt>:<digest>` (URL-safe base64, no
`$` that a shell, dotenv or compose would expand, no `,` that would split the list).

It lives beside `settings.py`, outside the layers, because two entry points that may not
import each other use it: the CLI makes hashes, the chat checks them. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

_SCHEME = "scrypt"
# scrypt's cost: 2**14 x 8 needs 16 MiB and some 50 ms per check, which makes guessing from a
# leaked hash slow while a login stays quick. Stored in each hash, so it can be raised later.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_DIGEST_BYTES = 32
_MAX_MEMORY = 64 * 1024 * 1024  # a hash naming a larger cost is refused, not computed
_VARIABLE = "OPSGRAPH_CHAT_USERS"


class PasswordError(ValueError):
    """A user list or a hash does not parse; the message names the entry and what it should look like."""


@dataclass(frozen=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def matches(self, password: str) -> bool:
        candidate = _scrypt(password, self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


def hash_password(password: str) -> str:
    """A new salted hash of `password`, for `OPSGRAPH_CHAT_USERS`; an empty password is refused."""
    if not password:
        raise PasswordError("an empty password cannot be hashed")
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, _N, _R, _P, _DIGEST_BYTES)
    return ":".join((_SCHEME, str(_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` (a `hash_password` result) was made from; constant-time."""
    return _parse_hash(stored, "the hash").matches(password)


class ChatUsers:
    """The users who may log in to the chat and their password hashes, from `OPSGRAPH_CHAT_USERS`."""

    def __init__(self, hashes: dict[str, str]) -> None:
        self._hashes = {name: _parse_hash(value, f"{_VARIABLE} entry {name!r}") for name, value in hashes.items()}
        # An unknown name costs a hash too, so the time of a refusal does not tell which names exist.
        self._decoy = _parse_hash(hash_password(secrets.token_urlsafe(16)), "the decoy")

    @property
    def names(self) -> list[str]:
        return sorted(self._hashes)

    def check(self, name: str, password: str) -> bool:
        """Whether `name` is a user and `password` is theirs (as slow for an unknown name as for a known one)."""
        stored = self._hashes.get(name)
        if stored is None:
            self._decoy.matches(password)
            return False
        return stored.matches(password)

    def __repr__(self) -> str:
        return f"ChatUsers({self.names})"  # the names, never the hashes


def parse_chat_users(text: str | None) -> ChatUsers:
    """`alice:<hash>,bob:<hash>` as ChatUsers; unset or blank gives none. Names are unique, hashes well-formed."""
    hashes: dict[str, str] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        name, sep, stored = (part.strip() for part in entry.partition(":"))
        if not sep or not name or not stored:
            shown = name or entry.strip()[:12]
            raise PasswordError(
                f"{_VARIABLE} entry {shown!r} is not name:hash (make the hash with `opsgraph chat hash-password`)"
            )
        if name in hashes:
            raise PasswordError(f"{_VARIABLE} names {name!r} twice")
        hashes[name] = stored
    return ChatUsers(hashes)


def _parse_hash(stored: str, where: str) -> _Hash:
    parts = stored.strip().split(":")
    problem = f"{where} is not a hash from `opsgraph chat hash-password` (scrypt:N:r:p:salt:digest)"
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise PasswordError(problem)
    try:
        n, r, p = (int(value) for value in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise PasswordError(problem) from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r > _MAX_MEMORY or not salt or len(digest) < 16:
        raise PasswordError(f"{where} has an unusable scrypt cost or length (N={n}, r={r}, p={p})")
    return _Hash(n, r, p, salt, digest)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAX_MEMORY + 1024 * 1024, dklen=length)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))  # binascii.Error is a ValueError
