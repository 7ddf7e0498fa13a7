"""GCP credentials never surface, key-file problems are named without their content, data fingerprints compare.

Google's libraries log requests at DEBUG (google-auth its token requests; the GAPIC clients
theirs when GOOGLE_SDK_PYTHON_LOGGING_SCOPE is set): everything they and OpsGraph log is
captured here while a probe and tools run under a fresh identity, so that a token is fetched
under the capture, and no access token or private key may appear in it, nor in any result.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gcp_support import GcpWorld, gcp_world

from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.data_safety import DataFingerprint, unexpected_changes
from opsgraph.tools.gcp_tools import PERMISSIONS, TOOLS
from opsgraph.tools.inventory import ResourceKind
from opsgraph.tools.probes import probe
from opsgraph.tools.runner import run_tool

_LOGGERS = ("google", "urllib3", "grpc", "opsgraph")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcpWorld]:
    with gcp_world(tmp_path_factory.mktemp("gcp-safety"), backing=False) as started:
        yield started


def private_key_lines(key_file: Path) -> list[str]:
    key = json.loads(key_file.read_text())["private_key"]
    return [line for line in key.splitlines() if line and "PRIVATE KEY" not in line]


def test_no_token_or_private_key_in_results_or_snapshots(world: GcpWorld) -> None:
    inventory = world.with_key("fresh-sa", {"*"})
    ctx = world.context(inventory)
    denied_inventory = world.with_key("denied-sa", set())
    emitted = [
        probe(inventory.get("web-1")),
        run_tool("gcp_compute_restart_instance", {"resource": "web-1"}, ctx, timeout_s=30),
        run_tool("gcp_compute_describe", {"resource": "web-1"}, ctx, timeout_s=30),
        run_tool("gcp_compute_describe", {"resource": "web-1"}, world.context(denied_inventory), timeout_s=30),
        probe(denied_inventory.get("web-1")),
    ]
    assert [getattr(item, "ok", None) for item in emitted] == [None, True, True, False, None]
    tokens = world.emulator.issued_tokens()
    assert len(tokens) >= 2
    lines = private_key_lines(Path(str(inventory.get("web-1").gcp_settings.credentials_file)))
    for text in (item.model_dump_json() for item in emitted):
        assert not any(token in text for token in tokens)
        assert not any(line in text for line in lines) and "PRIVATE KEY" not in text


def test_the_logs_hold_no_token_or_private_key(world: GcpWorld) -> None:
    """DEBUG everywhere, the GAPIC clients' request logging on; a fresh identity fetches its token under it."""
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    keep = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [(logger.level, logger.propagate) for logger in loggers]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOOGLE_SDK_PYTHON_LOGGING_SCOPE", "google")
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
            logger.addHandler(keep)
        try:
            inventory = world.with_key("logged-sa", {"*"})
            probe(inventory.get("web-1"))
            outcome = run_tool("gcp_compute_restart_instance", {"resource": "web-1"}, world.context(inventory), 30)
        finally:
            for logger, (level, propagate) in zip(loggers, saved, strict=True):
                logger.removeHandler(keep)
                logger.setLevel(level)
                logger.propagate = propagate
    assert outcome.ok, outcome.error
    text = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in handler_records)
    assert "/token" in text and "Sending request" in text  # google-auth's and the GAPIC client's DEBUG lines
    lines = private_key_lines(Path(str(inventory.get("web-1").gcp_settings.credentials_file)))
    assert not any(line in text for line in lines)
    for token in world.emulator.issued_tokens():
        assert token not in text


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nTOPSECRET', "it is not JSON"),
        (
            '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nTOPSECRET\\n", "x": 1}',
            "is not a usable service-account key",
        ),
        ("[1, 2]", "it is not a JSON object"),
    ],
)
def test_a_bad_key_file_is_named_never_quoted(tmp_path: Path, world: GcpWorld, content: str | None, says: str) -> None:
    key = tmp_path / "broken-key.json"
    if content is not None:
        key.write_text(content)
    inventory = world.with_gcp(credentials_file=str(key))
    outcome = run_tool("gcp_compute_describe", {"resource": "web-1"}, world.context(inventory), timeout_s=10)
    assert not outcome.ok and str(key) in str(outcome.error) and says in str(outcome.error), outcome.error
    assert "TOPSECRET" not in str(outcome.error)
    snapshot = probe(inventory.get("web-1"))
    assert snapshot.symptom == "gcp_compute_auth_failed" and "TOPSECRET" not in snapshot.model_dump_json()


def test_an_unreadable_key_file_is_named(tmp_path: Path, world: GcpWorld) -> None:
    key = tmp_path / "locked-key.json"
    key.mkdir()  # reading a directory fails for root too
    outcome = run_tool(
        "gcp_compute_describe", {"resource": "web-1"}, world.context(world.with_gcp(credentials_file=str(key))), 10
    )
    assert not outcome.ok and f"the GCP key file {key} cannot be read" in str(outcome.error)


def test_a_replaced_vm_is_a_data_safety_failure() -> None:
    before = DataFingerprint(
        source="live",
        facts={"id": "1", "creation_timestamp": "t0", "disks": ["projects/p/zones/z/disks/web-1"]},
        taken_at=0,
    )
    same = before.model_copy()
    replaced = before.model_copy(
        update={"facts": {**before.facts, "id": "2", "disks": ["projects/p/zones/z/disks/new"]}}
    )
    assert unexpected_changes(ResourceKind.GCP_COMPUTE, before, same, frozenset()) == []
    changes = unexpected_changes(ResourceKind.GCP_COMPUTE, before, replaced, frozenset())
    assert [change.split(" ", 1)[0] for change in changes] == ["id", "disks"]


def test_a_recreated_managed_instance_is_a_data_safety_failure() -> None:
    redis_before = DataFingerprint(
        source="live", facts={"create_time": "t0", "keys": 10, "persistent": True}, taken_at=0
    )
    emptied = redis_before.model_copy(update={"facts": {"create_time": "t1", "keys": 0, "persistent": True}})
    found = unexpected_changes(ResourceKind.GCP_REDIS, redis_before, emptied, frozenset())
    assert any(change.startswith("create_time changed") for change in found)
    assert any(change.startswith("keys fell from 10 to 0") for change in found)
    assert unexpected_changes(ResourceKind.GCP_REDIS, redis_before, emptied, frozenset({"keys", "create_time"})) == []
    sql_before = DataFingerprint(source="live", facts={"create_time": "t0", "system_identifier": "7"}, taken_at=0)
    other = sql_before.model_copy(update={"facts": {"create_time": "t0", "system_identifier": "8"}})
    assert "a different PostgreSQL cluster answers: the data was replaced" in unexpected_changes(
        ResourceKind.GCP_SQL, sql_before, other, frozenset()
    )


def test_every_gcp_tool_declares_its_permissions_and_mutating_ones_a_dry_run() -> None:
    assert set(PERMISSIONS) == {spec.name for spec in TOOLS}
    for spec in TOOLS:
        assert CATALOGUE[spec.name] is spec and spec.target_kind is not None and spec.target_kind.on_gcp
        grant = PERMISSIONS[spec.name]
        assert grant.permissions and all(role.startswith("roles/") for role in grant.roles)
        if spec.mutating:
            assert "dry_run" in spec.args_model.model_fields, spec.name
            assert spec.idempotent or spec.observe is not None


def test_the_catalogue_and_probes_load_no_google_library() -> None:
    """Google's clients take seconds to import: only the first GCP call may pay for them, never the CLI's start."""
    google = "('google.cloud', 'google.auth', 'google.api_core', 'grpc')"
    code = (
        "import sys, opsgraph.tools.catalogue, opsgraph.tools.probes, opsgraph.tools.runner; "
        f"print(sorted(m for m in sys.modules if m.startswith({google})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
