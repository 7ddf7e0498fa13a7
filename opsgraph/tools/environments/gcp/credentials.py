"""Who OpsGraph is on GCP: a service-account key file, or Application Default Credentials.

Loaded once per process per key file (or once for ADC) and kept: google-auth refreshes
the access token itself before it expires. A key file that was replaced (rotated) is
read again. A missing, unreadable or malformed key file is an error that names the file
and what is wrong with it, never its content: the file holds a private key.

A key whose `token_uri` is not Google's (the GCP emulator's, or a private token service)
is no Google identity: google-auth's background lookup of its Regional Access Boundary at
iamcredentials.googleapis.com is switched off for it, so that its token never leaves for Google.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from opsgraph.tools.environments.gcp.errors import GcpApiError
from opsgraph.tools.inventory import GcpSettings
from opsgraph.tools.redaction import redact

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.oauth2.service_account import Credentials as ServiceAccount

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_GOOGLE_TOKEN_HOSTS = ("googleapis.com", "google.com")
_ADC = "adc"
# Per key file (path, and its modification time: a rotated key is a new one) or ADC.
_LOADED: dict[tuple[str, int], Credentials] = {}
_LOCK = threading.Lock()


def _key_file_problem(path: Path, error: Exception) -> GcpApiError:
    """Why a key file cannot be used, in words that quote nothing of its content."""
    if isinstance(error, json.JSONDecodeError):
        why = f"it is not JSON (line {error.lineno}, column {error.colno})"
    elif isinstance(error, UnicodeDecodeError):
        why = "it is not UTF-8 text"
    else:  # google-auth's messages name missing fields or an undecodable key, not the values
        why = " ".join(redact(str(error)).split())[:200] or type(error).__name__
    return GcpApiError(
        f"the GCP key file {path} (gcp.credentials_file) is not a usable service-account key: {why}", 401
    )


def _read_key(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise GcpApiError(f"the GCP key file {path} (gcp.credentials_file) does not exist", 401) from None
    except OSError as error:
        raise GcpApiError(f"the GCP key file {path} cannot be read: {error.strerror}", 401) from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise _key_file_problem(path, error) from None
    if not isinstance(info, dict):
        raise _key_file_problem(path, ValueError("it is not a JSON object"))
    return info


@lru_cache(maxsize=1)
def _local_identity() -> type[ServiceAccount]:
    """Service-account credentials that never ask Google about themselves (see the module docstring)."""
    from google.oauth2 import service_account

    class LocalIdentity(service_account.Credentials):
        def _maybe_start_regional_access_boundary_refresh(self, request: Any, url: Any) -> None:
            return None

    return LocalIdentity


def _from_key_file(path: Path) -> Credentials:
    from google.oauth2 import service_account

    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise GcpApiError(f"the GCP key file {path} (gcp.credentials_file) does not exist", 401) from None
    except OSError as error:
        raise GcpApiError(f"the GCP key file {path} cannot be read: {error.strerror}", 401) from None
    key = (str(path), stamp)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        info = _read_key(path)
        token_host = urlparse(str(info.get("token_uri", ""))).hostname or ""
        kind: type[ServiceAccount] = (
            service_account.Credentials if token_host.endswith(_GOOGLE_TOKEN_HOSTS) else _local_identity()
        )
        try:
            credentials: Credentials = kind.from_service_account_info(info, scopes=SCOPES)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError) as error:
            raise _key_file_problem(path, error) from None
        _LOADED[key] = credentials
        return credentials


def _default() -> Credentials:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    key = (_ADC, 0)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        try:
            credentials, _project = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as error:
            raise GcpApiError(
                "no GCP credentials: the inventory names no gcp.credentials_file and Application Default "
                f"Credentials found none ({' '.join(redact(str(error)).split())[:200]})",
                401,
            ) from None
        _LOADED[key] = credentials
        return credentials


def credentials_for(settings: GcpSettings) -> Credentials:
    """The credentials of a resource's `gcp` section: its key file, else Application Default Credentials."""
    if settings.credentials_file is not None:
        return _from_key_file(settings.credentials_file)
    return _default()
