"""OpsGraph's import names belong to OpsGraph alone."""

from importlib.metadata import packages_distributions


def test_no_dependency_ships_a_top_level_module_named_like_ours() -> None:
    owners = packages_distributions()
    # (our own editable install is a .pth entry, so it may not be listed at all)
    assert owners.get("opsgraph", ["opsgraph"]) == ["opsgraph"]
    # The design card's folder names: had they been top-level packages, these would shadow them.
    for name in ("graph", "agents", "tools", "chat", "bench"):
        assert name not in owners, f"{owners[name]} ships a top-level '{name}'"
