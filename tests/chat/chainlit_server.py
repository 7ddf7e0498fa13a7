"""A real `chainlit run` for tests, and clients that talk to it the way Chainlit's frontend does.

`chainlit_server(app, folder, env)` starts the server on a free loopback port with `folder`
as its working directory (Chainlit writes `.chainlit/`, `chainlit.md` and `.files/` there),
waits until `/health` answers, yields a `ChainlitServer` and stops it afterwards; its log
is in the failure message when it does not come up, and attached to any failure raised
inside the block. The environment is the test process's without any OPSGRAPH_, CHAINLIT_ or
OAUTH_ variable, plus `env`: the server sees only the settings the test gives it.

`auth_env(passwords, roles)` gives the settings of a chat with login, `chainlit_refusal` checks
that a server refuses to start. Clients: `login_token` (POST /login as the login form does: the
`access_token` cookie), `socket_client` (a socket.io connection like the frontend's, with or
without that cookie; run it with `run_async`, since Playwright's sync API keeps an event loop
running in the test's thread), and `log_in(page, ...)` / `send_message(page, text)` for a
Playwright page.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import socketio
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from support import free_port, wait_for

from opsgraph.passwords import hash_password

ROOT = Path(__file__).parents[2]
CHAT_APP = ROOT / "opsgraph" / "chat" / "app.py"
ECHO_APP = Path(__file__).with_name("echo_app.py")
SOCKET_PATH = "/ws/socket.io"
COOKIE = "access_token"
START_TIMEOUT_S = 90.0  # ~1.5 s when idle; a loaded 2-core machine importing the graph takes far longer
STOP_TIMEOUT_S = 30.0
_ISOLATED_PREFIXES = ("OPSGRAPH_", "CHAINLIT_", "OAUTH_")
ASYNC_TIMEOUT_S = 120.0
T = TypeVar("T")
Command = Callable[[int], list[str]]  # the server's command line, given its port


@dataclass(frozen=True)
class ChainlitServer:
    """A running `chainlit run`: its base URL, working folder and log."""

    url: str
    folder: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def server_environment(folder: Path, env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without our settings or Chainlit's, plus `env`.

    OPSGRAPH_ENV_FILE points at a file that does not exist, so no developer's `.env` steers
    the server; OPSGRAPH_HOME defaults to `folder/state`.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_PREFIXES)}
    defaults = {"OPSGRAPH_ENV_FILE": str(folder / "no-such.env"), "OPSGRAPH_HOME": str(folder / "state")}
    return {**inherited, **defaults, **env}


def auth_env(passwords: Mapping[str, str], roles: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings of a chat with login: a fresh CHAINLIT_AUTH_SECRET, OPSGRAPH_CHAT_USERS with the
    hashes of `passwords` (name -> password) and, when given, OPSGRAPH_ROLES (name -> role)."""
    env = {
        "CHAINLIT_AUTH_SECRET": secrets.token_urlsafe(32),
        "OPSGRAPH_CHAT_USERS": ",".join(f"{name}:{hash_password(pw)}" for name, pw in passwords.items()),
    }
    if roles:
        env["OPSGRAPH_ROLES"] = ",".join(f"{name}={role}" for name, role in roles.items())
    return env


def _command(app: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "chainlit", "run", str(app.resolve()), "--headless",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def opsgraph_chat_command(inventory: Path, state_dir: Path) -> Command:
    """The documented way to serve the chat: `opsgraph chat --no-up` on this inventory and state folder."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "opsgraph", "chat", "--no-up", "--port", str(port),
            "--inventory", str(inventory), "--state-dir", str(state_dir),
        ]  # fmt: skip

    return command


@contextmanager
def chainlit_server(
    app: Path, folder: Path, env: Mapping[str, str] | None = None, command: Command | None = None
) -> Iterator[ChainlitServer]:
    """`chainlit run APP`, or `command(port)`, in `folder` with `env` (see the module doc), until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "chainlit.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command(port) if command is not None else _command(app, port),
            cwd=folder,
            env=server_environment(folder, env or {}),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = ChainlitServer(f"http://127.0.0.1:{port}", folder, log, process)
    try:
        wait_for(
            lambda: process.poll() is not None or _answers(server.url),
            f"chainlit to answer on {server.url}",
            START_TIMEOUT_S,
        )
        if process.poll() is not None:
            raise AssertionError(f"chainlit exited with {process.returncode}; its log:\n{_tail(server.log_text())}")
        try:
            yield server
        except BaseException as error:
            error.add_note(f"chainlit's log ({log}):\n{_tail(server.log_text())}")
            raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def chainlit_refusal(app: Path, folder: Path, env: Mapping[str, str]) -> str:
    """Start `chainlit run APP` expecting it to refuse to start: its log; fails if it serves instead."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        _command(app, port),
        cwd=folder,
        env=server_environment(folder, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = process.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"chainlit kept running although it should have refused to start:\n{output!r}") from None
    text = output.decode(errors="replace")
    assert process.returncode != 0, f"chainlit exited 0 although it should have refused to start:\n{_tail(text)}"
    return text


def login_token(url: str, username: str, password: str) -> str:
    """Log in as the login form does (POST /login); the `access_token` cookie's JWT. Fails on a refusal."""
    response = httpx.post(f"{url}/login", data={"username": username, "password": password}, timeout=30)
    assert response.status_code == 200, f"login as {username} answered {response.status_code}: {response.text}"
    token = response.cookies.get(COOKIE)
    assert token, f"login as {username} set no {COOKIE} cookie: {response.headers}"
    return token


@asynccontextmanager
async def socket_client(
    url: str, token: str | None, thread_id: str | None = None
) -> AsyncIterator[socketio.AsyncClient]:
    """A connected socket.io client, authenticated like the browser (the cookie) when `token` is given.

    Raises socketio.exceptions.ConnectionError when the server refuses the connection. Emit
    "connection_successful" on it to start the chat (Chainlit then runs on_chat_start).
    """
    client = socketio.AsyncClient(reconnection=False)
    auth = {"sessionId": str(uuid.uuid4()), "clientType": "webapp", "userEnv": "{}", "chatProfile": None}
    await client.connect(
        url,
        socketio_path=SOCKET_PATH,
        transports=["websocket"],
        headers={"Cookie": f"{COOKIE}={token}"} if token else {},
        auth={**auth, "threadId": thread_id},
        wait_timeout=30,
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def connect_once(url: str, token: str | None) -> None:
    """Open a socket.io connection as the browser would and close it (ConnectionError when refused)."""
    async with socket_client(url, token):
        pass


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to the end on its own event loop in a worker thread, and return its result.

    Playwright's sync API keeps an event loop running in the test's thread while the
    session's browser is open, so `asyncio.run` there fails: socket.io clients and the data
    layer's calls go through this instead.
    """
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result(timeout=ASYNC_TIMEOUT_S)


def log_in(page: Page, url: str, username: str, password: str) -> None:
    """Log a Playwright page in through Chainlit's login form; returns once the chat's input shows."""
    page.goto(f"{url}/login")
    page.locator("#email").fill(username)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign In").click()
    page.locator("#chat-input").wait_for(timeout=30_000)


SEND_TRIES = 6
SEND_WAIT_MS = 15_000


def send_message(page: Page, text: str) -> None:
    """Type `text` into the chat and send it. The send button is enabled only once the websocket is
    connected (and the input holds text): clicking it waits for that, where Enter would be lost.

    The frontend may re-render the input between the fill and the click (a message finishing its
    stream), emptying it: the button then stays disabled. Seen once under a loaded CI, so the text
    is typed again until the click lands (a click that landed sent the message once).
    """
    for _ in range(SEND_TRIES):
        page.locator("#chat-input").fill(text)
        try:
            page.locator("#chat-submit").click(timeout=SEND_WAIT_MS)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the chat never took {text!r}: its send button stayed disabled")
