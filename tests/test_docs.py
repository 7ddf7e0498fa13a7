"""The README lists every tool and every fault scenario, as the code describes them (docs that cannot drift)."""

from pathlib import Path

import yaml

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.faults import SCENARIOS
from opsgraph.tools.gcp_tools import PERMISSIONS
from opsgraph.tools.inventory import parse_inventory

README = (Path(__file__).parents[1] / "README.md").read_text()


def _table(header: str) -> list[str]:
    """The rows of the README table that starts with this header line."""
    lines = README.splitlines()
    start = lines.index(header) + 2  # past the header and its |---| line
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


TABLES = _table("| tool | acts on | risk | what it does |") + _table("| scenario | hits | what it does |")


def _row(name: str) -> str:
    rows = [line for line in TABLES if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"README.md needs exactly one table row for `{name}`, found {len(rows)}"
    return rows[0]


def test_every_tool_and_scenario_is_documented() -> None:
    missing = [name for name in [*CATALOGUE, *SCENARIOS] if f"`{name}`" not in README]
    assert not missing, f"add these to README.md: {missing}"


def test_tool_and_scenario_rows_say_what_the_code_says() -> None:
    stale = [name for name, spec in CATALOGUE.items() if spec.description not in _row(name)]
    stale += [name for name, scenario in SCENARIOS.items() if scenario.description not in _row(name)]
    assert not stale, f"README.md rows out of date with the code for: {stale}"


def test_the_external_servers_excerpt_is_a_valid_inventory() -> None:
    """The README's worked example of `environment: external` entries loads as it is printed."""
    section = README[README.index("## Servers you already run") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    inventory = parse_inventory({"resources": yaml.safe_load(block)}, "README.md")
    assert {resource.environment for resource in inventory.resources} == {"external"}


def test_the_gcp_permissions_table_says_what_the_code_declares() -> None:
    """Every GCP tool's row lists exactly the IAM permissions and roles `gcp_tools.PERMISSIONS` declares."""
    rows = _table("| tool | IAM permissions | predefined roles |")
    for name, grant in PERMISSIONS.items():
        row = next(line for line in rows if line.startswith(f"| `{name}` |"))
        _, permissions, roles = (cell.strip() for cell in row.strip("|").split("|"))
        assert permissions.split(", ") == [f"`{permission}`" for permission in grant.permissions], name
        assert roles.split(", ") == [f"`{role}`" for role in grant.roles], name


def test_the_gcp_excerpt_is_a_valid_inventory() -> None:
    """The README's worked example of the three GCP kinds loads as it is printed."""
    section = README[README.index("## GCP: Compute Engine") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    inventory = parse_inventory({"resources": yaml.safe_load(block)}, "README.md")
    assert {resource.kind for resource in inventory.resources} == {"gcp_compute", "gcp_redis", "gcp_sql"}


def test_the_metrics_table_lists_exactly_what_serve_exposes(tmp_path: Path) -> None:
    """Every family `opsgraph serve`'s /metrics exposes has one README row, and every row is a family."""
    from prometheus_client.parser import text_string_to_metric_families

    from opsgraph.graph.ledger import Ledger
    from opsgraph.serve.metrics import ServeMetrics
    from opsgraph.tools.snapshot import Health, Snapshot

    metrics = ServeMetrics(Ledger(tmp_path / "ledger.sqlite"))
    metrics.swept([Snapshot(resource="cache", kind="redis", health=Health.HEALTHY, taken_at=0.0)], 0.01, [0.01])
    body, _ = metrics.render()
    exposed = set()
    for family in text_string_to_metric_families(body.decode()):
        if not family.name.endswith("_created"):  # prometheus-client's creation times of its own counters
            exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    rows = _table("| metric | labels | what |")
    documented = {row.split("|")[1].strip().strip("`") for row in rows}
    assert documented == exposed, (sorted(documented - exposed), sorted(exposed - documented))


def test_the_alert_routes_excerpt_is_valid() -> None:
    """The README's `alert_routes` example loads on an inventory with its resources."""
    section = README[README.index("## Running as a service") :]
    block = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", section.index("```yaml"))]
    resources = [
        {"name": name, "kind": "redis", "environment": "local", "connection": {"host": "127.0.0.1", "port": port}}
        for name, port in (("cache", 16379), ("db", 16380))
    ]
    inventory = parse_inventory({"resources": resources, **yaml.safe_load(block)}, "README.md")
    assert inventory.resource_for_alert({"job": "redis"})[0] == "cache"
    assert inventory.resource_for_alert({"instance": "db-3:9187"})[0] == "db"
