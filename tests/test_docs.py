"""The README lists every tool and every fault scenario (docs that cannot drift)."""

from pathlib import Path

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.faults import SCENARIOS

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_tool_and_scenario_is_documented() -> None:
    missing = [name for name in [*CATALOGUE, *SCENARIOS] if f"`{name}`" not in README]
    assert not missing, f"add these to README.md: {missing}"
