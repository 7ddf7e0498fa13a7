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
