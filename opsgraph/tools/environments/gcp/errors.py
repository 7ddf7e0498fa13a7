"""Google API failures as ToolErrors that the model and the operator can act on.

Google's exceptions say what went wrong in Google's terms ("403 Required
'compute.instances.reset' permission for ..."); the operator needs what to do about it:
which permission is missing and which predefined role grants it, that the instance does
not exist where the inventory says, that another operation holds it, that a quota ran
out, that the credentials were rejected. Every message quotes the server's own words
too, redacted. A probe grades the same errors (`GcpApiError.status`) instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opsgraph.tools.environments.gcp.target import Target
from opsgraph.tools.errors import ToolError
from opsgraph.tools.redaction import redact

# The server's message names the permission it checked: "Required 'compute.instances.reset' permission for ...".
_PERMISSION = re.compile(r"'([a-z]+(?:\.[A-Za-z]+){2,})'")
_MAX_QUOTED_CHARS = 300
# api_core puts the request before a REST error's message ("POST https://...?$alt=json: ..."): not the news.
_REQUEST_PREFIX = re.compile(r"^(?:GET|POST|PATCH|PUT|DELETE) \S+: ")
NO_ANSWER = 0  # status of a call that got no HTTP answer (connection refused, timeout, TLS)


@dataclass(frozen=True)
class Grant:
    """What a call needs in IAM: its permissions, and the least-privilege predefined roles that grant them."""

    permissions: tuple[str, ...]
    roles: tuple[str, ...]

    def role_for(self, permission: str) -> str:
        """The role to grant for one of these permissions (the first role whose service matches)."""
        service = permission.split(".", 1)[0]
        matching = [role for role in self.roles if role.removeprefix("roles/").startswith(service)]
        return " or ".join(matching or self.roles)


class GcpApiError(ToolError):
    """A Google call that failed; `status` is the HTTP status (NO_ANSWER: none came), so probes can grade it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def credentials_refused(self) -> bool:
        """401 or 403: Google answered, and refused who OpsGraph is or what it may do (a restart fixes neither)."""
        return self.status in (401, 403)


def _quoted(text: str) -> str:
    cleaned = " ".join(redact(text).split())
    return cleaned if len(cleaned) <= _MAX_QUOTED_CHARS else cleaned[:_MAX_QUOTED_CHARS] + "..."


def _permission_denied(target: Target, grant: Grant, said: str) -> str:
    named = _PERMISSION.search(said)
    if named is not None:
        missing = named.group(1)
        lacks = f"lacks the IAM permission {missing} (granted by {grant.role_for(missing)})"
    else:
        lacks = (
            f"lacks one of the IAM permissions {', '.join(grant.permissions)} (granted by {' and '.join(grant.roles)})"
        )
    return (
        f"permission denied on {target}: {target.credentials} {lacks}; this call needs "
        f"{', '.join(grant.permissions)}. Google said: {said}"
    )


def describe(error: BaseException, target: Target, grant: Grant) -> GcpApiError | None:
    """The readable error for a failed call about `target`, or None when `error` is not a Google one."""
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth
    from requests import RequestException

    if isinstance(error, GcpApiError):
        return error
    if isinstance(error, auth.DefaultCredentialsError):
        return GcpApiError(f"no usable credentials for {target}: {_quoted(str(error))}", 401)
    if isinstance(error, auth.RefreshError):
        return GcpApiError(
            f"Google rejected {target.credentials} for {target} (no access token was issued): {_quoted(str(error))}",
            401,
        )
    if isinstance(error, auth.TransportError | RequestException | api.RetryError):
        return GcpApiError(f"the Google API did not answer for {target}: {_quoted(str(error))}", NO_ANSWER)
    if not isinstance(error, api.GoogleAPICallError):
        return None
    said = _quoted(_REQUEST_PREFIX.sub("", error.message or str(error)))
    status = int(error.code or 500)
    if isinstance(error, api.Unauthorized):
        message = (
            f"Google rejected {target.credentials} for {target} (401: credentials missing, expired or revoked). "
            f"Google said: {said}"
        )
    elif isinstance(error, api.Forbidden):
        message = _permission_denied(target, grant, said)
    elif isinstance(error, api.NotFound):
        message = (
            f"no such {target.service} {target.name} in {target.where} (check the inventory's gcp section). "
            f"Google said: {said}"
        )
    elif isinstance(error, api.Conflict):
        message = f"another operation is in progress on {target}; try again when it finishes. Google said: {said}"
    elif isinstance(error, api.TooManyRequests):
        message = (
            f"quota or rate limit exceeded for {target}: try again later, or raise the quota in {target.where}. "
            f"Google said: {said}"
        )
    elif isinstance(error, api.ServiceUnavailable | api.DeadlineExceeded | api.GatewayTimeout):
        message, status = f"the Google API did not answer in time for {target}. Google said: {said}", NO_ANSWER
    elif isinstance(error, api.BadRequest):
        message = f"Google refused the request on {target} ({status}). Google said: {said}"
    else:
        message = f"Google answered {status} for {target}. Google said: {said}"
    return GcpApiError(message, status)


@contextmanager
def google_call(target: Target, grant: Grant) -> Iterator[None]:
    """Run Google calls about `target`; their failures come out as GcpApiError, everything else unchanged."""
    try:
        yield
    except Exception as error:
        readable = describe(error, target, grant)
        if readable is None:
            raise
        raise readable from None
