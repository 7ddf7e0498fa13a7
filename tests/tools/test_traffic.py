"""The traffic generator stays on this machine and within its bounds."""

from __future__ import annotations

import pytest

from opsgraph.tools.traffic import TrafficError, TrafficPlan


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (TrafficPlan(base_url="http://10.0.0.1:8080"), "not a loopback address"),
        (TrafficPlan(base_url="http://127.0.0.1:8080", rate_per_s=500), "rate must be"),
        (TrafficPlan(base_url="http://127.0.0.1:8080", rate_per_s=0), "rate must be"),
        (TrafficPlan(base_url="http://127.0.0.1:8080", duration_s=7200), "duration must be"),
        (TrafficPlan(base_url="http://127.0.0.1:8080", workers=0), "workers must be"),
        (TrafficPlan(base_url="not a url"), "has no host"),
    ],
)
def test_out_of_bounds_plans_are_refused(plan: TrafficPlan, message: str) -> None:
    with pytest.raises(TrafficError, match=message):
        plan.validate()


def test_loopback_names_are_accepted() -> None:
    TrafficPlan(base_url="http://localhost:8080").validate()
    TrafficPlan(base_url="http://127.0.0.1:8080").validate()
