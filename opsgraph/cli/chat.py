"""`opsgraph chat`: serve the operator chat (a Chainlit app) on this inventory and state folder.

The chat runs as `chainlit run opsgraph/chat/app.py` in this process's place (exec), with the
inventory and state folder handed over as settings, so it drives the same graph, checkpoints
and ledger as every other command. Chainlit writes its files (`.chainlit/`, `.files/`,
`chainlit.md`) in its app root: that is `<state folder>/chat`, never the checkout.

`opsgraph chat hash-password` makes an entry of OPSGRAPH_CHAT_USERS. The password is read from
a hidden prompt (asked twice) on a terminal, or as one line from standard input otherwise
(`… | opsgraph chat hash-password`), never from an argument, which the shell history and `ps`
would show. Only the salted hash is printed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from opsgraph.cli.app import InventoryOption, StateOption, app, inventory_or_exit, local_stack
from opsgraph.cli.console import err, fail, progress
from opsgraph.passwords import PasswordError, hash_password
from opsgraph.tools.loopback import is_loopback

chat_app = typer.Typer(help="The operator chat: incidents, plans and approvals in a browser.")
app.add_typer(chat_app, name="chat", rich_help_panel="Incidents")

# Found by path, not imported: the chat is a sibling entry point of the CLI (the import contract).
CHAT_PACKAGE = Path(__file__).resolve().parents[1] / "chat"
AUTH_SECRET = "CHAINLIT_AUTH_SECRET"


def app_root(state_dir: Path) -> Path:
    """Chainlit's working folder under the state folder, with OpsGraph's configuration copied in."""
    root = state_dir.resolve() / "chat"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CHAT_PACKAGE / "chainlit" / "config.toml", root / ".chainlit" / "config.toml")
    shutil.copyfile(CHAT_PACKAGE / "chainlit" / "chainlit.md", root / "chainlit.md")
    return root


def chat_command(host: str, port: int, root: Path) -> list[str]:
    """The `chainlit run` command line of the chat app."""
    app_file = str(CHAT_PACKAGE / "app.py")
    return [sys.executable, "-m", "chainlit", "run", app_file, "--headless", "--host", host, "--port", str(port)]


def chat_environment(inventory: Path, state_dir: Path, root: Path) -> dict[str, str]:
    """This process's environment, plus the settings that point the chat at this inventory and state folder."""
    return {
        **os.environ,
        "OPSGRAPH_INVENTORY": str(inventory.resolve()),
        "OPSGRAPH_HOME": str(state_dir.resolve()),
        "CHAINLIT_APP_ROOT": str(root),
    }


@chat_app.callback(invoke_without_command=True)
def chat(
    ctx: typer.Context,
    inventory: InventoryOption = Path("opsgraph.yaml"),
    state_dir: StateOption = Path(".opsgraph"),
    host: Annotated[
        str, typer.Option(help="Listen address; a non-loopback one needs login (CHAINLIT_AUTH_SECRET).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Listen port.")] = 8000,
    up: Annotated[bool, typer.Option("--up/--no-up", help="Bring the local stack up first (as `opsgraph up`).")] = True,
) -> None:
    """Serve the operator chat on http://HOST:PORT (stops with Ctrl-C)."""
    if ctx.invoked_subcommand is not None:
        return
    inventory_or_exit(inventory)
    if not is_loopback(host) and not os.environ.get(AUTH_SECRET):
        fail(
            f"refusing to serve the chat on {host} without login: anyone who can reach it could approve fixes."
            f" Set {AUTH_SECRET} (`chainlit create-secret`) and OPSGRAPH_CHAT_USERS, or use a loopback --host",
            2,
        )
    if up:
        local_stack(inventory, state_dir).up(progress=progress)
    root = app_root(state_dir)
    err.print(f"chat on http://{host}:{port} (inventory {inventory}, state {state_dir}); Ctrl-C stops")
    command = chat_command(host, port, root)
    os.execve(command[0], command, chat_environment(inventory, state_dir, root))


@chat_app.command("hash-password")
def hash_password_command() -> None:
    """Print a salted scrypt hash of a password, for OPSGRAPH_CHAT_USERS=name:<hash>,..."""
    if sys.stdin.isatty():
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except PasswordError as error:
        fail(f"{error}: give the password on standard input or at the prompt", 2)
