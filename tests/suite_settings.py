"""A pytest plugin for the whole suite (`-p suite_settings` in pyproject): tests see only the settings they set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_developer_env_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A developer's `.env` in the checkout must not steer the suite (CI has none): point the
    settings at a file that does not exist; tests of `.env` itself set their own."""
    monkeypatch.setenv("OPSGRAPH_ENV_FILE", str(Path(tmp_path_factory.getbasetemp()) / "no-such.env"))
    # A test module runs dozens of incidents on one server within minutes, which the per-resource
    # action cap (3 per 15 min) exists to stop in production; tests of the caps set their own.
    monkeypatch.setenv("OPSGRAPH_RESOURCE_ACTION_CAP", "1000")
    yield
