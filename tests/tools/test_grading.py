"""Grading findings into a snapshot, and when an incident counts as recovered."""

from __future__ import annotations

import redis

from opsgraph.tools.inventory import parse_inventory
from opsgraph.tools.probes.grading import Finding, recovered_from, snapshot_of, unreachable
from opsgraph.tools.snapshot import Health

RESOURCE = parse_inventory({"resources": [{"name": "db", "kind": "postgres", "connection": {"port": 1}}]}).get("db")
CONFIG = Finding(Health.DEGRADED, "postgres_config_invalid", "postgresql.conf:3: invalid value")
FULL = Finding(Health.FAILED, "postgres_connections_exhausted", "20 of 20 ordinary slots in use")
CALM = Finding(Health.HEALTHY, "postgres_connections_exhausted", "2 of 20 ordinary slots in use")
BLOCKED = Finding(Health.DEGRADED, "postgres_blocked_queries", "2 queries wait on locks")


def test_an_advisory_finding_never_names_a_snapshot_with_another_problem() -> None:
    snapshot = snapshot_of(RESOURCE, [CONFIG, FULL], {})
    assert snapshot.symptom == "postgres_connections_exhausted" and snapshot.health is Health.FAILED
    assert snapshot.findings == {"postgres_config_invalid": Health.DEGRADED, "postgres_connections_exhausted": "failed"}
    assert snapshot_of(RESOURCE, [CONFIG, CALM], {}).symptom == "postgres_config_invalid"


def test_recovery_is_judged_on_the_incidents_own_symptom_and_everything_that_is_not_advisory() -> None:
    # The fix worked; a bad line on disk stays, reported by an incident of its own.
    assert recovered_from(snapshot_of(RESOURCE, [CONFIG, CALM], {}), "postgres_connections_exhausted")
    assert not recovered_from(snapshot_of(RESOURCE, [CONFIG, FULL], {}), "postgres_connections_exhausted")
    # Any other real problem still blocks recovery, and an advisory incident recovers only when it is gone.
    assert not recovered_from(snapshot_of(RESOURCE, [BLOCKED, CALM], {}), "postgres_connections_exhausted")
    assert not recovered_from(snapshot_of(RESOURCE, [CONFIG, CALM], {}), "postgres_config_invalid")
    assert recovered_from(snapshot_of(RESOURCE, [CALM], {}), "postgres_config_invalid")


def test_rejected_credentials_are_graded_apart_from_a_server_that_is_down() -> None:
    auth = redis.AuthenticationError("invalid username-password pair or user is disabled.")
    assert unreachable(RESOURCE, auth).symptom == "postgres_auth_failed"
    refused = ConnectionRefusedError("[Errno 111] Connection refused")
    assert unreachable(RESOURCE, refused).symptom == "postgres_unreachable"
