"""Named places where a test or the kill -9 benchmark makes this process die, on purpose.

Crash safety is only believed when it is tried: `bench/kill_matrix.py` and its tests set
`OPSGRAPH_FAILPOINT=<name>` for one worker, which then SIGKILLs itself when it reaches
that point — right after a step's intent row, after the tool call but before its result,
before the executor's checkpoint, in verification. Unset (always, in production) a
failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "OPSGRAPH_FAILPOINT"

AFTER_INTENT = "after_intent"
AFTER_TOOL_CALL = "after_tool_call"  # the tool ran, its result is not recorded: the call is in doubt
AFTER_RESULT = "after_result"
BEFORE_CHECKPOINT = "before_checkpoint"  # the executor's writes are not checkpointed yet
DURING_VERIFICATION = "during_verification"


def failpoint(name: str) -> None:
    """Die here, as `kill -9` would, when this is the failpoint the environment names."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
