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
    yield
