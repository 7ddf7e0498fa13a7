"""A property-based run of `opsgraph serve`'s API (schemathesis): every operation of its OpenAPI,
with generated input, as an approver and as nobody, answers without a 5xx.

Derandomized (a fixed Hypothesis seed per operation), so a failure reproduces and the run cannot
pass one day and fail the next on luck. Schemathesis' pytest plugin does not run on this pytest
(its `from_fixture` reads a node attribute pytest 9 removed), so each operation's strategy is
driven through Hypothesis directly.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from support import redis_resource, running_stack

from serve.serve_support import APPROVE, bearer, served

EXAMPLES_PER_OPERATION = 30


def test_no_input_gets_a_server_error(tmp_path: Path) -> None:
    with running_stack(tmp_path, [redis_resource()]) as stack, served(stack) as app:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app.client.app)
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"the API's OpenAPI does not load: {result}"
            operations.append(result.ok())
        assert len(operations) >= 13, [op.label for op in operations]
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: schemathesis.Case) -> None:
                for headers in (bearer(APPROVE), {}):
                    response = case.call(headers=headers)
                    case.validate_response(response, checks=[not_a_server_error])

            no_server_error()
