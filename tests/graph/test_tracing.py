"""Tracing is on only with a LangSmith key; otherwise it is pinned off."""

import os

import pytest

from opsgraph.graph.tracing import configure_tracing


def test_no_key_pins_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGCHAIN_TRACING_V2", "true")  # restored after the test
    assert configure_tracing() is False
    assert os.environ["LANGSMITH_TRACING"] == "false" and os.environ["LANGCHAIN_TRACING_V2"] == "false"


def test_a_key_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test-not-real")
    monkeypatch.delenv("LANGSMITH_TRACING", raising=False)
    assert configure_tracing() is True
