"""A crashed nginx started outside OpsGraph: restarted through its declared command, or refused and escalated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from outside_nginx import OutsideNginx, outside_nginx
from support import run_unattended

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[OutsideNginx]:
    with outside_nginx(tmp_path / "outside") as server:
        yield server


def incident(folder: Path, server: OutsideNginx, incident_id: str, **external: Any) -> dict[str, Any]:
    inventory_path = folder / "opsgraph.yaml"
    inventory_path.write_text(yaml.safe_dump({"version": 1, "resources": [server.resource(**external)]}))
    report = run_unattended(inventory_path, folder / "state", "web", incident_id, verify_deadline_s=20.0).report
    assert report is not None
    return report


def test_a_crashed_external_nginx_is_restarted_through_its_declared_command(
    tmp_path: Path, nginx: OutsideNginx
) -> None:
    config = nginx.config_sha256()
    crashed = nginx.kill()
    report = incident(tmp_path, nginx, "inc-crash", lifecycle="commands", commands={"start": nginx.argv()})
    assert report["resolved"] is True, report["outcome_detail"]
    assert report["symptom"] == "nginx_unreachable"
    assert [(action["tool"], action["status"]) for action in report["actions"]] == [("nginx_restart", "ok")]
    master = nginx.master_pid()
    assert master is not None and master != crashed
    title = Path(f"/proc/{master}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert f"-c {nginx.config_file}" in title  # its owner's command, its own config
    assert nginx.config_sha256() == config and nginx.serves()
    assert not (tmp_path / "state" / "local").exists()  # no replacement of OpsGraph's own


def test_without_a_lifecycle_a_down_external_nginx_is_refused_and_escalated(
    tmp_path: Path, nginx: OutsideNginx
) -> None:
    config = nginx.config_sha256()
    nginx.kill()
    report = incident(tmp_path, nginx, "inc-refused")
    assert report["outcome"] == "escalated", report["outcome_detail"]
    assert "not managed by OpsGraph" in report["outcome_detail"]
    assert report["actions"] == []
    assert not nginx.listening() and nginx.master_pid() is None
    assert nginx.config_sha256() == config
