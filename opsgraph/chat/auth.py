"""Who may use the chat: password login, and OAuth by Chainlit's own configuration, when CHAINLIT_AUTH_SECRET is set.

`install(settings)` (called by the app module, before the server starts) registers the
login callbacks with Chainlit. Chainlit turns login on as soon as one is registered; with
login on, its HTTP API answers 401 and its websocket refuses to connect without the
`access_token` cookie that `POST /login` sets, and the cookie is a JWT signed with
`CHAINLIT_AUTH_SECRET`.

Every combination that would leave the chat open while someone meant to close it, or
closed with no way in, stops the server at start with a `ChatAuthError` instead:

- `CHAINLIT_AUTH_SECRET` set, but no user in `OPSGRAPH_CHAT_USERS` and no OAuth provider,
  or shorter than 32 characters;
- `OPSGRAPH_CHAT_USERS` or an OAuth provider set, but no `CHAINLIT_AUTH_SECRET`;
- an OAuth provider without `OPSGRAPH_ROLES`: an OAuth login proves an account at the
  provider, not a place on the team, so only the accounts `OPSGRAPH_ROLES` lists may log in,
  named `provider:login` (`github:octocat=operator`) so that none can pass for a password user.

Without a secret and without users the chat is open to whoever reaches its port (bind it
to loopback). The logged-in user is `cl.User(identifier=name, metadata={"role": ...})`
with the role `OPSGRAPH_ROLES` gives the name (None when it gives none); the role is for
display: the approval node enforces roles itself, on the identifier it is handed.
"""

from __future__ import annotations

import asyncio
import logging
import os

import chainlit as cl
from chainlit.oauth_providers import get_configured_oauth_providers

from opsgraph.graph.approvals import Roles, parse_roles
from opsgraph.passwords import ChatUsers, parse_chat_users
from opsgraph.settings import Settings

logger = logging.getLogger(__name__)

AUTH_SECRET_VARIABLE = "CHAINLIT_AUTH_SECRET"
MIN_SECRET_LENGTH = 32  # the HMAC-SHA256 key of the login JWTs: shorter is guessable offline from one token


class ChatAuthError(RuntimeError):
    """The chat's login settings would leave it open, or let nobody in; the message says what to set."""


def chat_user(name: str, roles: Roles | None, provider: str) -> cl.User:
    """The Chainlit user for an operator who proved to be `name`, with their role for display."""
    role = roles.get(name) if roles is not None else None
    return cl.User(identifier=name, metadata={"role": role.value if role else None, "provider": provider})


def install(settings: Settings) -> bool:
    """Register the chat's login callbacks as the settings ask; True when login is required.

    Raises ChatAuthError (and a RolesError or PasswordError for a setting that does not
    parse) rather than start a chat that is open by mistake.
    """
    secret = os.environ.get(AUTH_SECRET_VARIABLE, "").strip()  # where Chainlit reads it
    users = parse_chat_users(settings.chat_users.get_secret_value() if settings.chat_users else None)
    roles = parse_roles(settings.roles)
    providers: list[str] = get_configured_oauth_providers()
    if not secret:
        if users.names or providers:
            configured = "OPSGRAPH_CHAT_USERS" if users.names else f"OAuth ({', '.join(providers)})"
            raise ChatAuthError(
                f"{configured} is set but {AUTH_SECRET_VARIABLE} is not, so the chat would have no login: "
                f"set {AUTH_SECRET_VARIABLE} (make one with `chainlit create-secret`)"
            )
        logger.warning(
            "the chat has no login (%s unset): anyone who reaches it may read and approve", AUTH_SECRET_VARIABLE
        )
        return False
    if len(secret) < MIN_SECRET_LENGTH:
        raise ChatAuthError(
            f"{AUTH_SECRET_VARIABLE} has {len(secret)} characters; it signs every login and needs at least "
            f"{MIN_SECRET_LENGTH} (make one with `chainlit create-secret`)"
        )
    if not users.names and not providers:
        raise ChatAuthError(
            f"{AUTH_SECRET_VARIABLE} is set but nobody could log in: set OPSGRAPH_CHAT_USERS to name:hash,... "
            "(hashes from `opsgraph chat hash-password`) or configure an OAuth provider"
        )
    if providers and roles is None:
        raise ChatAuthError(
            f"OAuth ({', '.join(providers)}) needs OPSGRAPH_ROLES: it names the accounts that may log in "
            "(any account at the provider could otherwise)"
        )
    if users.names:
        _install_password_login(users, roles)
    if providers and roles is not None:
        _install_oauth_login(roles)
    return True


def _install_password_login(users: ChatUsers, roles: Roles | None) -> None:
    @cl.password_auth_callback
    async def password_login(username: str, password: str) -> cl.User | None:
        # scrypt takes tens of milliseconds: off the event loop, which serves every other operator.
        if not await asyncio.to_thread(users.check, username, password):
            logger.warning("chat login refused for %r", username)
            return None
        return chat_user(username, roles, "password")


def _install_oauth_login(roles: Roles) -> None:
    @cl.oauth_callback
    async def oauth_login(
        provider_id: str, token: str, raw_user_data: dict[str, str], default_user: cl.User, id_token: str | None
    ) -> cl.User | None:
        # Named with the provider, so that an account called `alice` at the provider is not the password user alice.
        name = f"{provider_id}:{default_user.identifier}"
        if name not in roles:
            logger.warning("chat login refused for %r: not in OPSGRAPH_ROLES", name)
            return None
        return chat_user(name, roles, provider_id)
