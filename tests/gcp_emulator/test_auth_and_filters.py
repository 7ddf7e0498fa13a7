"""The emulator's token lifetimes and monitoring filters, on a clock and strings of the test's own."""

from __future__ import annotations

import time

import pytest
from google.auth import crypt, jwt

from opsgraph.gcp_emulator.auth import JWT_BEARER_GRANT, Authority
from opsgraph.gcp_emulator.errors import ApiError
from opsgraph.gcp_emulator.monitoring import parse_filter


def test_an_access_token_dies_after_its_ttl() -> None:
    now = [time.time()]
    authority = Authority("opsgraph-emulated", token_ttl_s=60, clock=lambda: now[0])
    key = authority.create_key("opsgraph-sa", frozenset({"*"}), token_uri="http://127.0.0.1:1/token")
    signer = crypt.RSASigner.from_service_account_info(key)  # type: ignore[no-untyped-call]
    claims = {"iss": key["client_email"], "aud": key["token_uri"], "iat": int(now[0]), "exp": int(now[0]) + 3600}
    assertion = jwt.encode(signer, claims).decode()  # type: ignore[no-untyped-call]
    granted = authority.grant({"grant_type": JWT_BEARER_GRANT, "assertion": assertion})
    assert granted["access_token"].startswith("emulator-") and granted["expires_in"] == 60
    assert authority.principal(f"Bearer {granted['access_token']}").email == key["client_email"]
    now[0] += 61
    with pytest.raises(ApiError) as expired:
        authority.principal(f"Bearer {granted['access_token']}")
    assert (expired.value.code, expired.value.status, expired.value.reason) == (401, "UNAUTHENTICATED", "EXPIRED")


def test_filters_are_conjunctions_of_equalities() -> None:
    text = 'metric.type = "agent.googleapis.com/memory/percent_used" AND resource.label.zone="us-central1-a"'
    assert parse_filter(text) == {
        "metric.type": "agent.googleapis.com/memory/percent_used",
        "resource.labels.zone": "us-central1-a",
    }
    for unsupported in ('resource.labels.zone = "a" OR metric.type = "b"', 'resource.labels.zone = "a"'):
        with pytest.raises(ApiError) as refused:
            parse_filter(unsupported)
        assert refused.value.code == 400
