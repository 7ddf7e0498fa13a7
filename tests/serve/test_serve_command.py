"""`opsgraph serve` refuses a bad OPSGRAPH_API_TOKENS before it listens, naming the entry and never the token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import redis_resource


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("alice:admin:0123456789abcdef-secret", "entry 1 ('alice') is not name:read|ingest|approve:token"),
        ("alice:read:short-secret", "entry 1 ('alice'): the token is shorter than 16 characters"),
        ("a:read:0123456789abcdef-one,a:approve:0123456789abcdef-two", "entry 2 ('a'): 'a' is named twice"),
    ],
    ids=["scope", "short", "twice"],
)
def test_bad_tokens_stop_serve_before_it_listens(tmp_path: Path, tokens: str, message: str) -> None:
    inventory = tmp_path / "opsgraph.yaml"
    inventory.write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))
    command = [sys.executable, "-m", "opsgraph", "serve", "--inventory", str(inventory), "--state-dir",
               str(tmp_path / "state"), "--port", "1"]  # fmt: skip
    env = {**os.environ, "OPSGRAPH_API_TOKENS": tokens}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert message in done.stderr
    for secret in ("0123456789abcdef", "short-secret"):
        assert secret not in done.stderr + done.stdout
