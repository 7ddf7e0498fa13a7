"""`opsgraph serve` refuses a bad OPSGRAPH_API_TOKENS before it listens, naming the entry and never the token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import redis_resource

from opsgraph.serve.auth import Scope, Tokens, TokensError


def test_bad_tokens_stop_serve_before_it_listens(tmp_path: Path) -> None:
    inventory = tmp_path / "opsgraph.yaml"
    inventory.write_text(yaml.safe_dump({"version": 1, "resources": [redis_resource()]}))
    command = [sys.executable, "-m", "opsgraph", "serve", "--inventory", str(inventory), "--state-dir",
               str(tmp_path / "state"), "--port", "1"]  # fmt: skip
    env = {**os.environ, "OPSGRAPH_API_TOKENS": "alice:admin:0123456789abcdef-secret"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "entry 1 ('alice') is not name:read|ingest|approve:token" in done.stderr
    assert "0123456789abcdef" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        ("alice:read:short-secret", "entry 1 ('alice'): the token is shorter than 16 characters"),
        ("a:read:0123456789abcdef-one,a:approve:0123456789abcdef-two", "entry 2 ('a'): 'a' is named twice"),
        ("alice:read", "entry 1 ('alice') is not name:read|ingest|approve:token"),
    ],
    ids=["short", "twice", "no-token"],
)
def test_each_bad_entry_is_named_without_its_token(tokens: str, message: str) -> None:
    with pytest.raises(TokensError) as refused:
        Tokens(tokens)
    assert message in str(refused.value)
    for secret in ("0123456789abcdef", "short-secret"):
        assert secret not in str(refused.value)


def test_a_token_names_its_caller_and_scope() -> None:
    tokens = Tokens("grafana:read:read-token-0123456789, alice:approve:a-token-0123456789abc")
    caller = tokens.caller("a-token-0123456789abc")
    assert caller is not None and (caller.name, caller.scope) == ("alice", Scope.APPROVE)
    assert caller.scope.allows(Scope.READ) and not caller.scope.allows(Scope.INGEST)
    assert tokens.caller("a-token-0123456789ab") is None and tokens.caller("") is None
    assert not Tokens(None).configured and not Tokens("  ").configured
