"""`opsgraph approve --digest` and roles, run as real subprocesses against a real local Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Cli

pytestmark = pytest.mark.timeout(180)


class ApprovalCli(Cli):
    """The CLI with a paused incident to answer."""

    def paused_incident(self) -> dict[str, Any]:
        """A memory-pressure incident left waiting for its approval (nobody answers the prompt)."""
        assert self("up").returncode == 0
        assert self("inject", "redis-memory-pressure").returncode == 0
        fixed = self("fix", "--json")
        assert fixed.returncode == 0, fixed.stderr
        records: list[dict[str, Any]] = [json.loads(line) for line in fixed.stdout.splitlines() if line.strip()]
        [record] = records
        assert record["outcome"] == "awaiting_approval"
        return record

    def shown(self, incident_id: str) -> dict[str, Any]:
        result = self("incidents", "show", incident_id, "--json")
        assert result.returncode == 0, result.stderr
        record: dict[str, Any] = json.loads(result.stdout)
        return record


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[ApprovalCli]:
    runner = ApprovalCli(tmp_path)
    try:
        yield runner
    finally:
        runner.down()


def test_approve_with_a_digest_runs_only_what_was_shown(cli: ApprovalCli) -> None:
    record = cli.paused_incident()
    incident_id = record["incident_id"]
    [digest] = [step["digest"] for step in record["pending_approval"]["steps"]]

    wrong = cli("approve", incident_id, "--digest", "0" * len(digest), "--by", "gina")
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr
    [line] = [text for text in wrong.stderr.splitlines() if text.startswith("error:")]
    assert "is not what" in line and digest in line and "nothing recorded, the incident is still pending" in line
    assert f"digest {digest}" in wrong.stderr  # each step is printed with its digest
    shown = cli.shown(incident_id)
    assert shown["status"] == "awaiting_approval" and shown["approvals"] == [] and shown["actions"] == []

    right = cli("approve", incident_id, "--digest", digest, "--by", "gina")
    assert right.returncode == 0, right.stderr
    assert "RESOLVED" in right.stdout
    shown = cli.shown(incident_id)
    assert shown["status"] == "resolved"
    assert [(a["decided_by"], a["digest"]) for a in shown["approvals"]] == [("gina", digest)]


def test_roles_refuse_a_viewer_in_one_line_and_keep_the_incident_pending(cli: ApprovalCli) -> None:
    roles = {"OPSGRAPH_ROLES": "alice=admin,carol=viewer"}
    incident_id = cli.paused_incident()["incident_id"]

    refused = cli("approve", incident_id, "--by", "carol", **roles)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    [line] = [text for text in refused.stderr.splitlines() if text.startswith("error:")]
    assert "carol is viewer and may not approve a disruptive step; who may: alice (admin)" in line
    assert f"{incident_id} is still pending" in line
    shown = cli.shown(incident_id)
    assert shown["status"] == "awaiting_approval" and shown["approvals"] == [] and shown["actions"] == []

    approved = cli("approve", incident_id, "--by", "alice", **roles)
    assert approved.returncode == 0, approved.stderr
    assert "RESOLVED" in approved.stdout
    assert cli.shown(incident_id)["approvals"][0]["decided_by"] == "alice"


def test_revise_prints_the_revised_plan_that_waits_again(cli: ApprovalCli) -> None:
    record = cli.paused_incident()
    incident_id = record["incident_id"]
    [old] = [step["digest"] for step in record["pending_approval"]["steps"] if step["tool"] == "redis_scale_memory"]

    revised = cli("revise", incident_id, "only 128 MB", "--by", "gina")
    assert revised.returncode == 0, revised.stderr
    [line] = [text for text in revised.stdout.splitlines() if "redis_scale_memory" in text and "digest" in text]
    assert '"maxmemory_mb": 128' in line and old not in line
    new = line.rsplit("digest ", 1)[1].strip()
    assert f"{incident_id} waits for approval again: opsgraph approve {incident_id} --digest {new}" in revised.stdout
    shown = cli.shown(incident_id)
    assert shown["status"] == "awaiting_approval" and shown["actions"] == []
    assert [(a["decision"], a["decided_by"], a["comment"]) for a in shown["approvals"]] == [
        ("revise", "gina", "only 128 MB")
    ]

    vague = cli("revise", incident_id, "be gentle", "--by", "gina")
    assert vague.returncode == 1 and "Traceback" not in vague.stderr
    [error] = [text for text in vague.stderr.splitlines() if text.startswith("error:")]
    assert "did not understand the change 'be gentle'" in error and f"{incident_id} still waits" in error
    assert f"digest {new}" in vague.stdout  # the same steps wait
