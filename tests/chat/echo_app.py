"""A minimal Chainlit app on OpsGraph's login and history, for the tests of the chat's server plumbing.

It installs exactly what the operator chat installs (`opsgraph.chat.auth`, `opsgraph.chat.history`)
and echoes each message, so login, the data endpoints, the websocket and persistence are
tested without the graph behind them.
"""

from __future__ import annotations

import chainlit as cl

from opsgraph.chat import auth, history
from opsgraph.settings import load_settings

_settings = load_settings()
auth.install(_settings)
history.install(_settings)


@cl.on_message
async def echo(message: cl.Message) -> None:
    await cl.Message(content=f"echo: {message.content}").send()  # type: ignore[no-untyped-call]
