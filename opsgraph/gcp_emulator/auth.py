"""The emulator's IAM: service-account keys it generates, the OAuth2 token endpoint, bearer checks.

Two bearer credentials are honoured, as Google honours them:
- an access token "emulator-<random>" from `POST /token`, the JWT-bearer grant that
  google-auth's service_account.Credentials sends (RS256 assertion signed with the key);
- a self-signed JWT (RS256, `scope` or `aud` claim), which Google's GAPIC clients send
  directly instead of fetching a token (always_use_jwt_access, AIP-4111).
Either is verified against the public half of a key this emulator generated, so only
key files written by `key_file` authenticate. Each identity carries exactly the IAM
permissions it was given ("*" = all).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from opsgraph.gcp_emulator.errors import ApiError

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_CLOCK_SKEW_S = 300  # what Google tolerates between the signer's clock and its own
_MAX_ASSERTION_LIFETIME_S = 3600


class GrantError(Exception):
    """A token request refused with OAuth2's error JSON (RFC 6749 §5.2), e.g. invalid_grant."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class ServiceAccount:
    """An identity of the emulated project: its email, its keys' public halves, its IAM permissions."""

    email: str
    permissions: frozenset[str]
    public_keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)

    def allows(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Authority:
    """Keys, issued tokens and permissions; thread-safe, since REST and gRPC threads ask at once."""

    def __init__(self, project: str, token_ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self.project = project
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._accounts: dict[str, ServiceAccount] = {}
        self._tokens: dict[str, tuple[ServiceAccount, float]] = {}  # token -> (account, expiry)
        self._seen: list[str] = []  # every bearer credential handed out or accepted, in order

    def create_key(self, name: str, permissions: frozenset[str], token_uri: str) -> dict[str, Any]:
        """A fresh RSA key for identity `name` (created if new, its permissions replaced): the key file's JSON."""
        email = f"{name}@{self.project}.iam.gserviceaccount.com"
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        with self._lock:
            account = self._accounts.setdefault(email, ServiceAccount(email, permissions))
            account.permissions = permissions
            account.public_keys[key_id] = private_key.public_key()
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(int.from_bytes(secrets.token_bytes(8), "big")),
            "auth_uri": token_uri.removesuffix("/token") + "/auth",
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }

    def grant(self, form: Mapping[str, str]) -> dict[str, Any]:
        """`POST /token`: the JWT-bearer grant -> an emulator access token; GrantError otherwise."""
        if form.get("grant_type") != JWT_BEARER_GRANT:
            raise GrantError("unsupported_grant_type", f"Only {JWT_BEARER_GRANT} is supported by the emulator.")
        try:
            account, claims = self._verify_jwt(form.get("assertion", ""))
        except ValueError as error:
            raise GrantError("invalid_grant", str(error)) from error
        audience = claims.get("aud")
        if not isinstance(audience, str) or not audience.endswith("/token"):
            raise GrantError("invalid_grant", "Invalid JWT: the audience must be the token URI.")
        token = f"emulator-{secrets.token_urlsafe(24)}"
        with self._lock:
            self._tokens[token] = (account, self._clock() + self.token_ttl_s)
            self._seen.append(token)
        return {"access_token": token, "expires_in": self.token_ttl_s, "token_type": "Bearer"}

    def principal(self, authorization: str | None) -> ServiceAccount:
        """The identity behind an `Authorization: Bearer …` value; ApiError 401 (UNAUTHENTICATED) if none."""
        if not authorization:
            raise _unauthenticated("Request is missing required authentication credential.", "CREDENTIALS_MISSING")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _unauthenticated("Request had invalid authentication credentials.", "ACCESS_TOKEN_TYPE_UNSUPPORTED")
        with self._lock:
            issued = self._tokens.get(credential)
        if issued is not None:
            account, expiry = issued
            if self._clock() >= expiry:
                raise _unauthenticated("Request had invalid authentication credentials: the token expired.", "EXPIRED")
            return account
        if credential.count(".") == 2:  # a self-signed JWT, as GAPIC clients send
            try:
                account, _ = self._verify_jwt(credential)
            except ValueError as error:
                raise _unauthenticated(f"Request had invalid authentication credentials: {error}", "INVALID") from error
            with self._lock:
                if credential not in self._seen:
                    self._seen.append(credential)
            return account
        raise _unauthenticated("Request had invalid authentication credentials.", "ACCESS_TOKEN_INVALID")

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._seen)

    def _verify_jwt(self, token: str) -> tuple[ServiceAccount, dict[str, Any]]:
        """The signer and claims of an RS256 JWT signed by one of our keys and live now; ValueError otherwise."""
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(claims_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise ValueError("Invalid JWT: not a JSON web token.") from error
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: only RS256-signed JWTs are accepted.")
        with self._lock:
            account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            raise ValueError(f"Invalid JWT: unknown issuer {claims.get('iss')!r}.")
        key_id = header.get("kid")
        named = account.public_keys.get(key_id) if isinstance(key_id, str) else None
        keys = [named] if named is not None else list(account.public_keys.values())
        if not any(_signed_by(key, f"{header_b64}.{claims_b64}".encode(), signature) for key in keys):
            raise ValueError("Invalid JWT Signature.")
        now = self._clock()
        issued_at, expires = claims.get("iat"), claims.get("exp")
        if not isinstance(issued_at, int | float) or not isinstance(expires, int | float):
            raise ValueError("Invalid JWT: iat and exp are required.")
        if issued_at > now + _CLOCK_SKEW_S or expires < now - _CLOCK_SKEW_S:
            raise ValueError("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe.")
        if expires - issued_at > _MAX_ASSERTION_LIFETIME_S + _CLOCK_SKEW_S:
            raise ValueError("Invalid JWT: the token lives longer than an hour.")
        return account, claims


def _signed_by(key: rsa.RSAPublicKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _unauthenticated(message: str, reason: str) -> ApiError:
    return ApiError(401, message, reason=reason, legacy_reason="authError", domain="googleapis.com")


def permission_denied(permission: str, resource: str) -> ApiError:
    """The 403 Google answers when the caller lacks `permission` on `resource`, in its real wording."""
    return ApiError(
        403,
        f"Required '{permission}' permission for '{resource}'",
        reason="IAM_PERMISSION_DENIED",
        domain="iam.googleapis.com",
        metadata={"permission": permission, "resource": resource},
    )
