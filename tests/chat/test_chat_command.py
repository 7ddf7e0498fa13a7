"""`opsgraph chat` refuses to serve approvals to the network without login; Chainlit stays out of the checkout."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from support import Cli

from opsgraph.cli.chat import app_root, chat_command, chat_environment


def test_a_non_loopback_host_without_login_is_refused(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    refused = cli("chat", "--no-up", "--host", "0.0.0.0", CHAINLIT_AUTH_SECRET="")
    assert refused.returncode == 2
    assert "refusing to serve the chat on 0.0.0.0 without login" in refused.stderr
    assert "CHAINLIT_AUTH_SECRET" in refused.stderr


def test_a_bad_inventory_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.inventory.write_text("version: 1\nresources: [{name: cache}]\n")
    refused = cli("chat", "--no-up")
    assert refused.returncode == 2
    assert "kind" in refused.stderr
    assert not (cli.state_dir / "chat").exists()


def test_chainlit_runs_in_the_state_folder_with_opsgraph_settings(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    root = app_root(state_dir)
    assert root == state_dir.resolve() / "chat"
    config = (root / ".chainlit" / "config.toml").read_text()
    assert 'name = "OpsGraph"' in config
    assert f'generated_by = "{version("chainlit")}"' in config  # else Chainlit warns that it is outdated
    assert (root / "chainlit.md").read_text().startswith("# OpsGraph operator chat")
    command = chat_command("127.0.0.1", 8123, root)
    assert command[1:4] == ["-m", "chainlit", "run"] and Path(command[4]).name == "app.py"
    assert command[-4:] == ["--host", "127.0.0.1", "--port", "8123"]
    env = chat_environment(tmp_path / "inv.yaml", state_dir, root)
    assert env["OPSGRAPH_HOME"] == str(state_dir.resolve())
    assert env["OPSGRAPH_INVENTORY"] == str((tmp_path / "inv.yaml").resolve())
    assert env["CHAINLIT_APP_ROOT"] == str(root)
