"""OpsGraph's import names belong to OpsGraph alone."""

import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path


def test_no_dependency_ships_a_top_level_module_named_like_ours() -> None:
    owners = packages_distributions()
    # (our own editable install is a .pth entry, so it may not be listed at all)
    assert owners.get("opsgraph", ["opsgraph"]) == ["opsgraph"]
    # The design card's folder names: had they been top-level packages, these would shadow them.
    for name in ("graph", "agents", "tools", "chat", "bench"):
        assert name not in owners, f"{owners[name]} ships a top-level '{name}'"


def test_dependencies_run_one_way() -> None:
    """The import contract of pyproject.toml (entry points -> graph -> agents -> tools) holds."""
    lint_imports = Path(sys.executable).with_name("lint-imports")  # import-linter's command, in this venv
    checked = subprocess.run(
        [str(lint_imports)], cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120, check=False
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert "1 kept, 0 broken" in checked.stdout
