"""Shared grading: turn a measured percentage into a health verdict by an inventory band."""

from __future__ import annotations

import time
from dataclasses import dataclass

from opsgraph.tools.inventory import Band, Resource
from opsgraph.tools.snapshot import Health, Snapshot


def grade(value: float, band: Band) -> Health:
    if value >= band.failed:
        return Health.FAILED
    if value >= band.degraded:
        return Health.DEGRADED
    return Health.HEALTHY


def worst(healths: list[Health]) -> Health:
    order = [Health.HEALTHY, Health.DEGRADED, Health.FAILED]
    return max(healths, key=order.index, default=Health.HEALTHY)


# What a server that is up says to credentials it rejects (PostgreSQL, Redis ACL / requirepass).
_AUTH_REFUSED = (
    "password authentication failed",
    "no password supplied",
    "WRONGPASS",
    "NOAUTH",
    "invalid username-password pair",
    "Authentication required",
)


def unreachable(resource: Resource, error: Exception) -> Snapshot:
    """The snapshot of a resource that did not let OpsGraph in.

    A server that rejects OpsGraph's credentials is up: `<kind>_auth_failed`, which no
    runbook answers with a restart (a restart cannot fix a password), rather than
    `<kind>_unreachable`.
    """
    where = f"{resource.connection.host}:{resource.connection.port}"
    text = f"{type(error).__name__}: {error}"
    if any(marker in str(error) for marker in _AUTH_REFUSED):
        symptom, reason = f"{resource.kind}_auth_failed", f"{resource.kind} at {where} refused OpsGraph's credentials"
        reason += f" (connection.user / password_env): {text}"
    else:
        symptom, reason = f"{resource.kind}_unreachable", f"{resource.kind} at {where} did not answer: {text}"
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=Health.FAILED,
        symptom=symptom,
        reasons=[reason],
        taken_at=time.time(),
    )


@dataclass(frozen=True)
class Finding:
    """One graded aspect of a resource: its verdict, the symptom it names, and why."""

    health: Health
    symptom: str
    reason: str


# Findings about something standing that no fix of another symptom changes (a config on
# disk that would fail its next test): they are reported and escalated on their own, but
# they neither name a snapshot that has another problem nor block the verification of
# another incident's fix.
ADVISORY_SYMPTOMS = frozenset({"nginx_config_invalid", "postgres_config_invalid"})


def snapshot_of(resource: Resource, findings: list[Finding], metrics: dict[str, float | int | str | None]) -> Snapshot:
    """The snapshot: worst verdict wins; the first unhealthy (non-advisory) finding names the symptom."""
    unhealthy = [finding for finding in findings if finding.health is not Health.HEALTHY]
    leading = sorted(unhealthy, key=lambda finding: finding.symptom in ADVISORY_SYMPTOMS)
    return Snapshot(
        resource=resource.name,
        kind=resource.kind,
        health=worst([finding.health for finding in findings]),
        symptom=leading[0].symptom if leading else None,
        reasons=[finding.reason for finding in leading],
        metrics=metrics,
        findings={finding.symptom: finding.health for finding in unhealthy},
        taken_at=time.time(),
    )


def recovered_from(snapshot: Snapshot, symptom: str) -> bool:
    """Whether an incident about `symptom` is over: the resource is healthy, or all that is left
    are advisory findings about something else (reported by incidents of their own)."""
    left = snapshot.unhealthy_symptoms()
    return symptom not in left and all(name in ADVISORY_SYMPTOMS for name in left)
