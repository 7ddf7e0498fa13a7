"""The chat's conversations, kept by Chainlit's SQL data layer: SQLite in the state folder, or PostgreSQL.

`install(settings)` (called by the app module, before the server starts) creates the tables
and registers the data layer with Chainlit. The database is `<state folder>/chat.sqlite`
unless `OPSGRAPH_CHAT_DATABASE_URL` names another (`postgresql://user@host/db`, driven by
psycopg, or `sqlite:///path`).

Chainlit's `SQLAlchemyDataLayer` creates no tables, and it logs and drops every statement
that fails, so a missing column loses history without an error. The schema is therefore
made here from what Chainlit 2.12 writes (the columns of its step, element, feedback,
thread and user records; a test checks them against Chainlit's own types), once at start,
idempotently, adding any column a newer Chainlit writes to tables made earlier. Columns
holding JSON are TEXT on both databases: that is what Chainlit's queries expect (it
`json.dumps` on write, `LIKE`s and `json.loads` on read), and one schema then behaves the
same on SQLite and PostgreSQL.

Chainlit lists and resumes threads only for a logged-in user (its thread list is keyed by
the user's id): without auth (no `CHAINLIT_AUTH_SECRET`) the steps are still written, but the
sidebar shows no history and no thread can be reopened.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from sqlalchemy import Boolean, Column, Integer, MetaData, Table, Text, create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from opsgraph.settings import Settings

logger = logging.getLogger(__name__)

DATABASE_FILE = "chat.sqlite"
_VARIABLE = "OPSGRAPH_CHAT_DATABASE_URL"
# The async driver Chainlit's engine uses, and the sync one the schema is made with.
_DRIVERS = {"sqlite": ("sqlite+aiosqlite", "sqlite"), "postgresql": ("postgresql+psycopg", "postgresql+psycopg")}


class ChatHistoryError(RuntimeError):
    """The chat's history database is misconfigured or unreachable; the message says which and why."""


def _text(name: str, nullable: bool = True) -> Column[Any]:
    return Column(name, Text, nullable=nullable)


_STEP_TEXT = "parentId command modes metadata tags input output createdAt start end generation showInput language icon"
_ELEMENT_TEXT = "threadId type url chainlitKey display objectKey size language props playerConfig forId mime"
SCHEMA = MetaData()
Table(
    "users",
    SCHEMA,
    Column("id", Text, primary_key=True),
    Column("identifier", Text, nullable=False, unique=True),
    _text("metadata", nullable=False),
    _text("createdAt"),
)
Table(
    "threads",
    SCHEMA,
    Column("id", Text, primary_key=True),
    *(_text(name) for name in ("createdAt", "name", "userId", "userIdentifier", "tags", "metadata")),
)
Table(
    "steps",
    SCHEMA,
    Column("id", Text, primary_key=True),
    _text("name", nullable=False),
    _text("type", nullable=False),
    _text("threadId", nullable=False),
    Column("streaming", Boolean, nullable=False),
    *(Column(name, Boolean) for name in ("waitForAnswer", "isError", "defaultOpen", "autoCollapse")),
    Column("indent", Integer),
    *(_text(name) for name in _STEP_TEXT.split()),
)
Table(
    "elements",
    SCHEMA,
    Column("id", Text, primary_key=True),
    _text("name", nullable=False),
    Column("page", Integer),
    Column("autoPlay", Boolean),
    *(_text(name) for name in _ELEMENT_TEXT.split()),
)
Table(
    "feedbacks",
    SCHEMA,
    Column("id", Text, primary_key=True),
    _text("forId", nullable=False),
    _text("threadId"),
    Column("value", Integer, nullable=False),
    _text("comment"),
)


def database_url(settings: Settings) -> URL:
    """The async SQLAlchemy URL of the chat's history: the setting, or chat.sqlite in the state folder."""
    if settings.chat_database_url is None:
        path = (Path(settings.home) / DATABASE_FILE).resolve()
        return URL.create(_DRIVERS["sqlite"][0], database=str(path))
    text = settings.chat_database_url.get_secret_value()
    try:
        url = make_url(text)
    except ArgumentError:
        raise ChatHistoryError(f"{_VARIABLE} is not a database URL (e.g. postgresql://user@host:5432/db)") from None
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise ChatHistoryError(
            f"{_VARIABLE} names a {backend} database; the chat keeps history in postgresql or sqlite"
        )
    return url.set(drivername=_DRIVERS[backend][0])


def ensure_schema(url: URL) -> None:
    """Create the tables Chainlit's data layer needs, and any column they lack; safe to run at every start."""
    backend = url.get_backend_name()
    sync_url = url.set(drivername=_DRIVERS[backend][1])
    where = url.render_as_string(hide_password=True)
    if backend == "sqlite" and url.database:
        folder = Path(url.database).parent
        if not folder.parent.is_dir():
            raise ChatHistoryError(f"the chat's history folder {folder}: its parent is not an existing folder")
        folder.mkdir(exist_ok=True)
    engine = create_engine(sync_url)
    try:
        with engine.begin() as connection:
            SCHEMA.create_all(connection)
            found = inspect(connection)
            for table in SCHEMA.sorted_tables:
                have = {column["name"] for column in found.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have:
                        kind = column.type.compile(dialect=engine.dialect)
                        name = engine.dialect.identifier_preparer.quote(column.name)
                        connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")
    except SQLAlchemyError as error:
        raise ChatHistoryError(f"the chat's history database {where}: {error.__class__.__name__}: {error}") from None
    finally:
        engine.dispose()


class HistoryDataLayer(SQLAlchemyDataLayer):
    """Chainlit's SQL data layer, with every dict or list value stored as JSON text.

    Chainlit encodes the metadata it writes, but passes a message's `modes` (a dict) and a
    thread's `tags` (a list) as they are; neither driver can bind those to a TEXT column, and
    the data layer would log and drop the whole step.
    """

    async def execute_sql(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]] | int | None:
        encoded = {
            key: json.dumps(value) if isinstance(value, dict | list) else value for key, value in parameters.items()
        }
        return await super().execute_sql(query, encoded)


def install(settings: Settings) -> URL:
    """Make the history's tables and register the data layer with Chainlit; returns the database URL.

    Runs when the app module loads, so an unreachable or misconfigured database stops the
    server at start with a clear message instead of losing every conversation quietly.
    """
    url = database_url(settings)
    ensure_schema(url)

    @cl.data_layer
    def history() -> HistoryDataLayer:
        return HistoryDataLayer(url.render_as_string(hide_password=False))

    logger.info("chat history in %s", url.render_as_string(hide_password=True))
    return url
