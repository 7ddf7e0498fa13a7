"""A tool is declared once, on its function: `declare` reads its name, argument model and description from it."""

from __future__ import annotations

from typing import Any

import pytest

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.docker_tools import MAX_REPLICAS
from opsgraph.tools.environments.docker import SERVICE_LABEL
from opsgraph.tools.inventory import ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, declare


class EchoArgs(ToolArgs):
    words: int = 1


def test_a_declared_function_becomes_its_spec() -> None:
    @declare(risk=Risk.READ, target=ResourceKind.REDIS, idempotent=True)
    def echo(args: EchoArgs, ctx: ToolContext) -> dict[str, Any]:
        """Say the words back,
        unchanged.

        Only for this test: the second paragraph is for people reading the code.
        """
        return {"words": args.words}

    assert echo.name == "echo"
    assert echo.description == "Say the words back, unchanged."
    assert echo.args_model is EchoArgs  # resolved from a string annotation (postponed evaluation)
    assert (echo.risk, echo.target_kind, echo.idempotent) == (Risk.READ, ResourceKind.REDIS, True)


def test_a_tool_without_a_description_or_an_argument_model_is_refused() -> None:
    def undocumented(args: EchoArgs, ctx: ToolContext) -> dict[str, Any]:
        return {}

    def untyped(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """Takes a plain dict."""
        return {}

    with pytest.raises(TypeError, match="docstring"):
        declare(risk=Risk.READ, target=None, idempotent=True)(undocumented)
    with pytest.raises(TypeError, match="ToolArgs"):
        declare(risk=Risk.READ, target=None, idempotent=True)(untyped)


def test_every_description_is_its_own() -> None:
    descriptions = [spec.description for spec in CATALOGUE.values()]
    assert len(set(descriptions)) == len(descriptions)


def test_docker_scale_says_its_label_and_its_bound() -> None:
    """Its docstring spells them out (a docstring cannot be formatted); the code must agree with it."""
    description = CATALOGUE["docker_scale"].description
    assert f"({SERVICE_LABEL} label)" in description and f"At most {MAX_REPLICAS}." in description
