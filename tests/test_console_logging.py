"""Python logging under `watch` (a crashed run's traceback, a library warning) is redacted in both forms.

Run in a fresh interpreter: pytest installs its own logging handlers, and what matters is what a
real `watch` process prints to its stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PLANTED = "postgresql://shop:planted-Secret-42@db.internal:5432/shop"
SCRIPT = """
import logging, sys
from opsgraph.cli.console import EventLog
EventLog(structured=sys.argv[1] == "structured").capture_logging()
logging.getLogger("opsgraph.test").warning("could not connect to %s", sys.argv[2])
"""


@pytest.mark.parametrize("form", ["structured", "terminal"])
def test_logged_credentials_are_masked(form: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, form, PLANTED], capture_output=True, text=True, timeout=60, check=True
    )
    assert "planted-Secret-42" not in run.stderr
    assert "db.internal" in run.stderr  # the rest of the message stays readable
    if form == "structured":
        assert json.loads(run.stderr)["level"] == "warning"
