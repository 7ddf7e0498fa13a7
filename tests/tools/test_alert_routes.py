"""The inventory's `alert_routes`: which resource an incoming alert is about, and bad routes refused by field."""

from __future__ import annotations

from typing import Any

import pytest

from opsgraph.tools.inventory import InventoryError, parse_inventory


def inventory(routes: list[dict[str, Any]]) -> Any:
    resources = [
        {"name": name, "kind": "redis", "environment": "local", "connection": {"host": "127.0.0.1", "port": port}}
        for name, port in (("cache", 16379), ("sessions", 16380))
    ]
    return parse_inventory({"version": 1, "resources": resources, "alert_routes": routes})


ROUTES = [
    {"match": {"job": "redis", "instance": "10.0.0.5:9121"}, "resource": "sessions"},
    {"match_re": {"instance": r"cache-\d+:9121"}, "resource": "cache"},
    {"match": {"team": "shop"}, "resource_label": "service"},
]


@pytest.mark.parametrize(
    ("labels", "resource", "how"),
    [
        ({"job": "redis", "instance": "10.0.0.5:9121"}, "sessions", "alert_routes[1]"),
        ({"job": "redis", "instance": "cache-12:9121"}, "cache", "alert_routes[2]"),
        ({"instance": "cache-12:9121x"}, None, "no alert route matches"),
        ({"team": "shop", "service": "cache"}, "cache", "alert_routes[3]"),
        ({"team": "shop", "service": "web"}, None, "alert_routes[3] names 'web', which is not in the inventory"),
        ({"resource": "cache"}, "cache", "its 'resource' label"),
        ({"resource": "db"}, None, "its 'resource' label names 'db', which is not in the inventory"),
    ],
    ids=[
        "exact",
        "regex-in-full",
        "regex-not-partial",
        "by-label",
        "label-unknown",
        "default-label",
        "default-unknown",
    ],
)
def test_the_first_matching_route_names_the_resource(labels: dict[str, str], resource: str | None, how: str) -> None:
    found, why = inventory(ROUTES).resource_for_alert(labels)
    assert found == resource and how in why, (found, why)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"match_re": {"instance": "(unclosed"}, "resource": "cache"}, "match_re.instance"),
        ({"match": {"job": "redis"}, "resource": "cache", "resource_label": "service"}, "exactly one of"),
        ({"match": {"job": "redis"}}, "exactly one of"),
        ({"resource": "cache"}, "needs `match` or `match_re`"),
        (
            {"match": {"job": "redis"}, "resource": "nosuch"},
            "alert_routes[1]: resource 'nosuch' is not in the inventory",
        ),
        ({"match": {"job": "redis"}, "resource": "cache", "severity": "page"}, "severity"),
    ],
    ids=["bad-regex", "both", "neither", "matches-everything", "unknown-resource", "unknown-field"],
)
def test_a_bad_route_is_refused_with_where(route: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError) as refused:
        inventory([route])
    assert message in str(refused.value)
