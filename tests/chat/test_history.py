"""The chat's history: the schema Chainlit's SQL data layer needs is made idempotently, covers every field
Chainlit writes, and a conversation written through the data layer survives a restart — on SQLite and on
a real PostgreSQL."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_type_hints

import chainlit as cl
import pytest
from chainlit.config import config as chainlit_config
from chainlit.context import init_http_context
from chainlit.element import ElementDict
from chainlit.step import StepDict
from chainlit.types import Feedback, Pagination, ThreadFilter
from chainlit.utils import utc_now
from outside_postgres import OutsidePostgres, outside_postgres
from pydantic import SecretStr
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url

from chat.chainlit_server import run_async
from opsgraph.chat import history
from opsgraph.settings import Settings


def sqlite_url(folder: Path) -> URL:
    return history.database_url(Settings(_env_file=None, home=str(folder / "state")))


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsidePostgres]:
    with outside_postgres(tmp_path_factory.mktemp("chat-history-pg")) as server:
        yield server


def postgres_url(server: OutsidePostgres, database: str) -> URL:
    with server.connect() as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql://postgres:{server.password}@127.0.0.1:{server.port}/{database}"
    return history.database_url(Settings(_env_file=None, chat_database_url=SecretStr(url)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """An empty history database of each kind the chat supports, with its schema made."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = postgres_url(request.getfixturevalue("postgres"), f"chat_{uuid.uuid4().hex[:12]}")
    history.ensure_schema(url)
    return url


def columns(url: URL) -> dict[str, set[str]]:
    engine = create_engine(url.set(drivername="sqlite" if url.get_backend_name() == "sqlite" else url.drivername))
    try:
        found = inspect(engine)
        return {table: {column["name"] for column in found.get_columns(table)} for table in found.get_table_names()}
    finally:
        engine.dispose()


def test_the_default_database_is_chat_sqlite_in_the_state_folder_and_others_are_checked(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    assert (url.drivername, url.database) == ("sqlite+aiosqlite", str((tmp_path / "state" / "chat.sqlite").resolve()))
    pg = history.database_url(
        Settings(_env_file=None, chat_database_url=SecretStr("postgresql://ops:pw-not-real@db:5432/chat"))
    )
    assert (pg.drivername, pg.host, pg.database) == ("postgresql+psycopg", "db", "chat")
    for wrong, why in [("mysql://ops:pw-not-real@db/chat", "mysql database"), ("not a url", "not a database URL")]:
        with pytest.raises(history.ChatHistoryError, match=why) as refused:
            history.database_url(Settings(_env_file=None, chat_database_url=SecretStr(wrong)))
        assert "pw-not-real" not in str(refused.value)
    with pytest.raises(history.ChatHistoryError, match="parent is not an existing folder"):
        history.ensure_schema(sqlite_url(tmp_path / "missing"))


def test_the_schema_is_made_once_and_kept(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    history.ensure_schema(url)
    with sqlite3.connect(str(url.database)) as connection:
        connection.execute("""INSERT INTO users (id, identifier, metadata) VALUES ('u1', 'alice', '{}')""")
    history.ensure_schema(url)  # again, as at every start: nothing dropped or duplicated
    with sqlite3.connect(str(url.database)) as connection:
        assert connection.execute("SELECT identifier FROM users").fetchall() == [("alice",)]
    assert set(columns(url)) == {"users", "threads", "steps", "elements", "feedbacks"}


def test_tables_from_an_older_chainlit_gain_the_columns_it_added(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    Path(str(url.database)).parent.mkdir()
    with sqlite3.connect(str(url.database)) as connection:  # the 2.0 docs' steps table, no command/modes/...
        connection.execute(
            'CREATE TABLE steps ("id" UUID PRIMARY KEY, "name" TEXT NOT NULL, "type" TEXT NOT NULL,'
            ' "threadId" UUID NOT NULL, "streaming" BOOLEAN NOT NULL, "output" TEXT)'
        )
        connection.execute("""INSERT INTO steps VALUES ('s1', 'alice', 'user_message', 't1', 0, 'kept')""")
    history.ensure_schema(url)
    assert {"command", "modes", "defaultOpen", "autoCollapse"} <= columns(url)["steps"]
    with sqlite3.connect(str(url.database)) as connection:
        assert connection.execute("SELECT output, modes FROM steps").fetchall() == [("kept", None)]


def test_the_schema_holds_every_field_chainlit_writes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    history.ensure_schema(url)
    have = columns(url)
    # What Chainlit 2.12 inserts: its step, element and feedback records field by field (a step's
    # feedback is a row of its own, an element's local path is never stored), a thread's and a user's
    # columns as SQLAlchemyDataLayer.update_thread and create_user name them.
    expected = {
        "steps": set(get_type_hints(StepDict)) - {"feedback"},
        "elements": set(get_type_hints(ElementDict)) - {"path"},
        "feedbacks": {field.name for field in dataclasses.fields(Feedback)},
        "threads": {"id", "createdAt", "name", "userId", "userIdentifier", "tags", "metadata"},
        "users": {"id", "identifier", "createdAt", "metadata"},
    }
    for table, fields in expected.items():
        assert fields <= have[table], f"{table} lacks {sorted(fields - have[table])}"


async def write_conversation(url: URL, thread_id: str) -> str:
    """Alice's thread as the running chat writes it: her user, the thread, her message (with modes, a dict
    Chainlit passes unencoded), a tool step and the answer; returns her user id."""
    layer = history.HistoryDataLayer(url.render_as_string(hide_password=False))
    try:
        init_http_context(thread_id=thread_id)
        user = await layer.create_user(cl.User(identifier="alice", metadata={"role": "operator"}))
        assert user is not None
        await layer.update_thread(thread_id, name="fix the cache", user_id=user.id, tags=["incident"])
        question = cl.Message(content="fix the cache", author="alice", type="user_message", modes={"model": "fast"})
        question.created_at = utc_now()  # type: ignore[no-untyped-call]  # as Message.send() stamps it
        await layer.create_step(question.to_dict())
        probe = cl.Step(name="probe cache", type="tool")
        probe.output = "used_memory 31.9 MB of 32 MB"
        await layer.create_step(probe.to_dict())
        answer = cl.Message(content="The plan: purge 128 MB.", author="OpsGraph")
        answer.created_at = utc_now()  # type: ignore[no-untyped-call]
        await layer.create_step(answer.to_dict())
        return user.id
    finally:
        await layer.close()


async def read_conversation(url: URL, thread_id: str, user_id: str) -> dict[str, Any]:
    layer = history.HistoryDataLayer(url.render_as_string(hide_password=False))  # a new engine: a restart
    try:
        listed = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=user_id))
        return {
            "thread": await layer.get_thread(thread_id),
            "author": await layer.get_thread_author(thread_id),
            "listed": [thread["id"] for thread in listed.data],
            "user": await layer.get_user("alice"),
        }
    finally:
        await layer.close()


def test_a_conversation_survives_a_restart(database: URL) -> None:
    thread_id = str(uuid.uuid4())
    user_id = run_async(write_conversation(database, thread_id))
    found = run_async(read_conversation(database, thread_id, user_id))
    thread = found["thread"]
    assert thread is not None and thread["name"] == "fix the cache"
    assert [(step["name"], step["output"]) for step in thread["steps"]] == [
        ("alice", "fix the cache"),
        ("probe cache", "used_memory 31.9 MB of 32 MB"),
        ("OpsGraph", "The plan: purge 128 MB."),
    ]
    assert (found["author"], found["listed"]) == ("alice", [thread_id])
    assert found["user"] is not None and found["user"].metadata == {"role": "operator"}


def test_install_registers_the_data_layer_on_the_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chainlit_config.code, "data_layer", None)
    url = history.install(Settings(_env_file=None, home=str(tmp_path / "state")))
    assert make_url(url).database == str((tmp_path / "state" / "chat.sqlite").resolve())
    assert (tmp_path / "state" / "chat.sqlite").exists()  # the schema is made at install, before any request
    factory = chainlit_config.code.data_layer
    assert factory is not None
    layer = factory()
    assert isinstance(layer, history.HistoryDataLayer)
    run_async(layer.close())
