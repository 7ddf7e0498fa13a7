"""The chat's login: hashed passwords only, nothing visible without a login (HTTP and websocket), and no
configuration that would leave the chat open by mistake.

The server tests run one real `chainlit run` of the echo app (which installs the chat's own
auth and history) for the module, with alice (operator) and carol (viewer) as users.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import socketio
from chainlit.config import config as chainlit_config
from chainlit.user import User
from playwright.sync_api import Page
from typer.testing import CliRunner

from chat.chainlit_server import (
    COOKIE,
    ECHO_APP,
    ChainlitServer,
    auth_env,
    chainlit_refusal,
    chainlit_server,
    connect_once,
    log_in,
    login_token,
    run_async,
    send_message,
)
from opsgraph.chat import auth
from opsgraph.cli.app import app as cli
from opsgraph.passwords import PasswordError, hash_password, parse_chat_users, verify_password
from opsgraph.settings import Settings

PASSWORDS = {"alice": "correct horse battery", "carol": "viewer's own phrase"}
ROLES = {"alice": "operator", "carol": "viewer"}

# Chainlit's data and action endpoints, with well-formed bodies: each must answer 401 without a login.
DATA_ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/project/threads", {"pagination": {"first": 20}, "filter": {}}),
    ("GET", "/project/thread/00000000-0000-0000-0000-000000000000", None),
    ("GET", "/user", None),
    ("GET", "/project/settings", None),
    (
        "POST",
        "/project/action",
        {"sessionId": "s", "action": {"id": "a", "forId": "m", "name": "approve", "payload": {}}},
    ),
    ("PUT", "/project/thread", {"threadId": "t", "name": "renamed"}),
    ("DELETE", "/project/thread", {"threadId": "t"}),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainlitServer]:
    folder = tmp_path_factory.mktemp("chat-auth")
    with chainlit_server(ECHO_APP, folder, auth_env(PASSWORDS, ROLES)) as running:
        yield running


def test_a_password_hash_round_trips_and_a_wrong_password_is_refused() -> None:
    stored = hash_password("correct horse battery")
    assert "correct" not in stored and stored.startswith("scrypt:")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # salted
    users = parse_chat_users(f"alice:{stored}")
    assert users.check("alice", "correct horse battery")
    assert not users.check("alice", "wrong")
    assert not users.check("mallory", "correct horse battery")
    assert stored not in repr(users)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("alice", "'alice' is not name:hash"),
        ("alice:hunter2", "'alice' is not a hash"),  # a plaintext password is refused, not compared
        ("alice:scrypt:3:8:1:c2FsdA:ZGlnZXN0ZGlnZXN0ZGlnZXN0", "unusable scrypt cost"),
        (f"bob:{hash_password('x')},bob:{hash_password('y')}", "names 'bob' twice"),
    ],
)
def test_a_malformed_user_list_is_refused_naming_the_entry(text: str, named: str) -> None:
    with pytest.raises(PasswordError, match=named):
        parse_chat_users(text)


def test_hash_password_prints_a_hash_of_the_password_on_stdin() -> None:
    result = CliRunner().invoke(cli, ["chat", "hash-password"], input="s3cret phrase\n")
    assert result.exit_code == 0, result.output
    assert verify_password("s3cret phrase", result.stdout.strip())
    empty = CliRunner().invoke(cli, ["chat", "hash-password"], input="\n")
    assert empty.exit_code == 2 and "empty password" in empty.output


@pytest.fixture
def no_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chainlit's registered callbacks are process-wide: each test starts without and leaves none behind."""
    for name in ("password_auth_callback", "oauth_callback"):
        monkeypatch.setattr(chainlit_config.code, name, None)
    for name in ("CHAINLIT_AUTH_SECRET", "OAUTH_GITHUB_CLIENT_ID", "OAUTH_GITHUB_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)


# Long enough to be accepted, and the same in every collection (a test id must not change between runs).
LONG_SECRET = "a-fixed-test-secret-of-more-than-32-characters"


@pytest.mark.usefixtures("no_callbacks")
@pytest.mark.parametrize(
    ("secret", "settings", "oauth", "refusal"),
    [
        ("", {"chat_users": f"alice:{hash_password('x')}"}, False, "CHAINLIT_AUTH_SECRET is not"),
        ("", {}, True, "OAuth \\(github\\) is set but CHAINLIT_AUTH_SECRET is not"),
        (LONG_SECRET, {}, False, "nobody could log in"),
        ("short-secret", {"chat_users": f"alice:{hash_password('x')}"}, False, "needs at least 32"),
        (LONG_SECRET, {}, True, "OAuth \\(github\\) needs OPSGRAPH_ROLES"),
    ],
)
def test_settings_that_would_leave_the_chat_open_or_locked_are_refused(
    monkeypatch: pytest.MonkeyPatch, secret: str, settings: dict[str, str], oauth: bool, refusal: str
) -> None:
    if secret:
        monkeypatch.setenv("CHAINLIT_AUTH_SECRET", secret)
    if oauth:
        monkeypatch.setenv("OAUTH_GITHUB_CLIENT_ID", "id")
        monkeypatch.setenv("OAUTH_GITHUB_CLIENT_SECRET", "not-a-real-secret")
    with pytest.raises(auth.ChatAuthError, match=refusal):
        auth.install(Settings(_env_file=None, **settings))  # type: ignore[arg-type]
    assert chainlit_config.code.password_auth_callback is None and chainlit_config.code.oauth_callback is None


@pytest.mark.usefixtures("no_callbacks")
def test_oauth_logs_in_only_the_accounts_in_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", secrets.token_urlsafe(32))
    monkeypatch.setenv("OAUTH_GITHUB_CLIENT_ID", "id")
    monkeypatch.setenv("OAUTH_GITHUB_CLIENT_SECRET", "not-a-real-secret")
    assert auth.install(Settings(_env_file=None, roles="alice=admin,github:octocat=operator"))
    callback = chainlit_config.code.oauth_callback
    assert callback is not None and chainlit_config.code.password_auth_callback is None

    def login(account: str) -> User | None:
        user: User | None = run_async(callback("github", "token", {}, User(identifier=account), None))
        return user

    octocat = login("octocat")
    assert octocat is not None and (octocat.identifier, octocat.metadata["role"]) == ("github:octocat", "operator")
    assert login("mallory") is None
    assert login("alice") is None  # a GitHub account named alice is not the password user alice


def test_the_server_refuses_to_start_with_a_secret_and_no_users(tmp_path: Path) -> None:
    log = chainlit_refusal(ECHO_APP, tmp_path, {"CHAINLIT_AUTH_SECRET": secrets.token_urlsafe(32)})
    assert "ChatAuthError: CHAINLIT_AUTH_SECRET is set but nobody could log in" in log


@pytest.mark.parametrize(("method", "path", "body"), DATA_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in DATA_ENDPOINTS])
def test_data_endpoints_refuse_a_client_without_a_valid_login(
    server: ChainlitServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    forged = jwt.encode({"identifier": "alice", "metadata": {}}, secrets.token_urlsafe(32), algorithm="HS256")
    for cookies in ({}, {COOKIE: forged}):
        response = httpx.request(method, f"{server.url}{path}", json=body, cookies=cookies, timeout=30)
        assert response.status_code == 401, (
            f"{method} {path} with {list(cookies)}: {response.status_code} {response.text}"
        )


def test_the_websocket_refuses_a_client_without_a_valid_login(server: ChainlitServer) -> None:
    forged = jwt.encode({"identifier": "alice", "metadata": {}}, secrets.token_urlsafe(32), algorithm="HS256")

    for token in (None, forged):
        with pytest.raises(socketio.exceptions.ConnectionError):
            run_async(connect_once(server.url, token))
    logged_in = login_token(server.url, "alice", PASSWORDS["alice"])
    run_async(connect_once(server.url, logged_in))  # the same client, logged in


def test_login_with_the_right_password_gives_a_session_with_the_role(server: ChainlitServer) -> None:
    refused = httpx.post(f"{server.url}/login", data={"username": "alice", "password": "wrong"}, timeout=30)
    assert refused.status_code == 401 and COOKIE not in refused.cookies
    unknown = httpx.post(f"{server.url}/login", data={"username": "mallory", "password": "x"}, timeout=30)
    assert unknown.status_code == 401
    token = login_token(server.url, "carol", PASSWORDS["carol"])
    user = httpx.get(f"{server.url}/user", cookies={COOKIE: token}, timeout=30)
    assert user.status_code == 200
    assert (user.json()["identifier"], user.json()["metadata"]["role"]) == ("carol", "viewer")


def test_the_browser_shows_a_login_form_and_logs_in(server: ChainlitServer, page: Page) -> None:
    page.goto(server.url)
    page.wait_for_url(f"{server.url}/login")
    page.locator("#email").fill("alice")
    page.locator("#password").fill("not the password")
    page.get_by_role("button", name="Sign In").click()
    page.get_by_text("Unable to sign in").wait_for()
    assert page.locator("#chat-input").count() == 0
    log_in(page, server.url, "alice", PASSWORDS["alice"])
    send_message(page, "hello from alice")
    page.get_by_text("echo: hello from alice").wait_for()
