"""Compaction: tool outputs of any size come back as bounded, still-structured JSON."""

from __future__ import annotations

import json

import pytest

from opsgraph.agents.compaction import compact


def big_output() -> dict[str, object]:
    return {
        "clients": [{"id": i, "addr": f"10.0.0.{i % 250}:5{i:04d}", "idle": i, "cmd": "get"} for i in range(5000)],
        "log": "x" * 100_000,
        "nested": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": 1}}}}}}}}}},
        "used_memory": 65011712,
    }


@pytest.mark.parametrize("budget", [16, 50, 200, 1000, 1500, 4000])
def test_output_never_exceeds_the_budget(budget: int) -> None:
    assert len(compact(big_output(), budget)) <= budget


def test_small_values_are_rendered_whole() -> None:
    value = {"used_memory": 1, "policy": "noeviction", "ok": True, "ratio": 1.5, "none": None}
    assert json.loads(compact(value, 1000)) == value


def test_keys_survive_and_cuts_are_marked() -> None:
    text = compact(big_output(), 1500)
    parsed = json.loads(text)
    assert set(parsed) == {"clients", "log", "nested", "used_memory"}
    assert parsed["used_memory"] == 65011712
    assert "more items" in str(parsed["clients"][-1])
    assert "chars]" in parsed["log"]


def test_too_many_keys_are_summarised() -> None:
    value = {f"key{i}": i for i in range(1000)}
    text = compact(value, 400)
    assert len(text) <= 400
    assert "more keys" in text


def test_objects_and_models_are_rendered_not_dumped_raw() -> None:
    from opsgraph.tools.runner import ToolOutcome

    outcome = ToolOutcome(ok=True, output={"x": "y" * 10_000}, duration_s=0.1)
    text = compact(outcome, 300)
    assert len(text) <= 300 and '"ok":true' in text
    assert len(compact(object(), 100)) <= 100
