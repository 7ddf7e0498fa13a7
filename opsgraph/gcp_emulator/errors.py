"""Google's error shape, as the emulator answers a refused call over REST and over gRPC.

The JSON is what google.api_core.exceptions.from_http_response reads: `error.message`,
the canonical `error.status`, the legacy `error.errors[].reason` that Compute Engine
clients still look at, and a google.rpc.ErrorInfo in `error.details` whose reason and
metadata (e.g. the missing permission) surface as the exception's `reason`/`metadata`.
"""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no type hints

# HTTP status -> the canonical google.rpc.Code name Google pairs with it.
_CANONICAL: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# HTTP status -> the legacy `errors[].reason` of the older JSON APIs (Compute Engine, Cloud SQL).
_LEGACY_REASON: dict[int, str] = {
    400: "invalid",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}

_DEFAULT_MESSAGE: dict[int, str] = {
    400: "Invalid request.",
    403: "The caller does not have permission.",
    404: "The requested resource was not found.",
    409: "The request conflicts with an operation in progress.",
    429: "Quota exceeded: too many requests.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def canonical_status(code: int) -> str:
    """The google.rpc.Code name for an HTTP status (UNKNOWN for one Google does not map)."""
    return _CANONICAL.get(code, "UNKNOWN")


def default_message(code: int) -> str:
    return _DEFAULT_MESSAGE.get(code, f"Emulated error {code}.")


class ApiError(Exception):
    """A call the emulated API refuses, rendered as Google's error JSON or as a gRPC status."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: str | None = None,
        reason: str | None = None,
        legacy_reason: str | None = None,
        domain: str = "googleapis.com",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or canonical_status(code)
        self.reason = reason
        self.legacy_reason = legacy_reason or _LEGACY_REASON.get(code, "unknown")
        self.domain = domain
        self.metadata = metadata or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "errors": [{"message": self.message, "domain": "global", "reason": self.legacy_reason}],
        }
        if self.reason:
            error["details"] = [
                {"@type": _ERROR_INFO, "reason": self.reason, "domain": self.domain, "metadata": self.metadata}
            ]
        return {"error": error}

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.status] if self.status in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN

    @property
    def rpc_code(self) -> int:
        """The numeric google.rpc.Code, as a google.longrunning Operation's `error.code` carries it."""
        return int(self.grpc_code.value[0])


class BackendError(RuntimeError):
    """A real server behind an emulated instance (redis-server, PostgreSQL) cannot be reached or driven."""


def not_found(resource: str) -> ApiError:
    return ApiError(404, f"The resource '{resource}' was not found", reason="RESOURCE_NOT_FOUND")


def operation_in_progress(resource: str, operation: str) -> ApiError:
    """The 409 of a mutation while another operation on the same resource is not DONE."""
    return ApiError(
        409,
        f"Operation failed because another operation was already in progress on '{resource}' (operation {operation}).",
        legacy_reason="operationInProgress",
        reason="OPERATION_IN_PROGRESS",
        metadata={"resource": resource, "operation": operation},
    )
