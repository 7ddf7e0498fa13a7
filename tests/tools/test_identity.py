"""A server's identity changes on every start and on nothing else: the evidence that settles a restart in doubt."""

from __future__ import annotations

from pathlib import Path

from support import running_stack, shop_resources

from opsgraph.tools.identity import server_identity
from opsgraph.tools.spec import ToolContext


def test_every_local_kind_shows_a_new_identity_after_a_restart_and_none_when_down(tmp_path: Path) -> None:
    with running_stack(tmp_path, shop_resources()) as stack:
        tools = ToolContext(inventory=stack.inventory, state_dir=stack.state_dir)
        for name in ("cache", "db", "shop", "edge"):
            resource = stack.inventory.get(name)
            before = server_identity(resource, tools)
            assert before is not None, name
            assert server_identity(resource, tools) == before, name  # stable while the same instance runs
            stack.local.restart(name)
            after = server_identity(resource, tools)
            assert after is not None and after != before, name
        stack.local.down()
        assert [server_identity(stack.inventory.get(n), tools) for n in ("cache", "db", "shop", "edge")] == [None] * 4
