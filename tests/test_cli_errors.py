"""Bad input to the real `opsgraph` command: one clear error line, the right exit status, no traceback.

Issue 10, findings 7 and 8: every case here used to be accepted silently, to crash with a
traceback (UnicodeDecodeError, FileExistsError, Rich's MarkupError), or to lose part of its
message to Rich markup (`[a-z0-9]` in the name pattern, `[x]` in a file name). Nothing here
needs a server: each command must stop before it would reach one. The commands run in
process through Typer's runner (a subprocess costs seconds of imports each); the last test
runs `python -m opsgraph` itself, entry point included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import free_port
from typer.testing import CliRunner, Result

from opsgraph.cli import app
from opsgraph.tools.inventory import MAX_INVENTORY_BYTES

pytestmark = pytest.mark.timeout(120)

# A port nothing listens on: a command that wrongly went on to probe would find no server to touch.
REDIS = {"name": "cache", "kind": "redis", "connection": {"port": free_port()}}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the repository applies


def opsgraph(*args: str) -> Result:
    """The `opsgraph` command line, in this process."""
    return CliRunner().invoke(app, list(args))


def error_of(result: Result, status: int) -> str:
    """The command's error message (from `error: ` on), after checking the exit status and that nothing raised."""
    assert result.exit_code == status, (result.exit_code, result.stderr, result.exc_info)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.stderr.startswith("error: "), result.stderr
    return result.stderr.removeprefix("error: ").rstrip("\n")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("inventory", "expected"),
    [
        ("resources:\n  - {name: cache, kind: redis, connection: {port: 16379},"
         " thresholds: {memory_used_pct: {degraded: .nan, failed: 95}}}\n",
         "  resources[0].thresholds.memory_used_pct.degraded: Input should be a finite number"),
        ("resources:\n  - {name: cache, kind: redis, connection: {port: true}}\n",
         "  resources[0].connection.port: Input should be a valid integer"),
        ("resources:\n  - {name: db, kind: postgres, connection: {port: 15432, user: postgres},"
         " local: {app_user: postgres}}\n",
         "  resources[0].local.app_user: Value error, 'postgres' is a PostgreSQL superuser or reserved role"),
        ("resources:\n  - {name: Cache, kind: redis, connection: {port: 16379}}\n",
         "  resources[0].name: String should match pattern '^[a-z0-9][a-z0-9_-]{0,62}$'"),  # printed intact
    ],
)  # fmt: skip
def test_a_bad_value_names_the_field(tmp_path: Path, inventory: str, expected: str) -> None:
    path = write(tmp_path / "opsgraph.yaml", inventory)
    [first, field] = error_of(opsgraph("scan", "-i", str(path)), 2).splitlines()
    assert first == f"{path} is not a valid inventory:"
    assert field.startswith(expected)


def test_a_key_given_twice_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "opsgraph.yaml", "resources:\n  - name: cache\n    kind: redis\n    name: db\n")
    message = error_of(opsgraph("scan", "-i", str(path)), 2)
    assert message == f"{path} is not valid YAML: line 4, column 5: key 'name' appears twice (first on line 2)"


def test_a_binary_or_oversized_inventory_is_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    message = error_of(opsgraph("scan", "-i", str(binary)), 2)
    assert message == f"{binary} is not UTF-8 text (byte 0x80 at offset 128): not an inventory file"
    huge = write(tmp_path / "huge.yaml", yaml.safe_dump({"resources": [REDIS]}) + "#" * MAX_INVENTORY_BYTES)
    message = error_of(opsgraph("scan", "-i", str(huge)), 2)
    assert message == f"{huge} is larger than the inventory size cap of {MAX_INVENTORY_BYTES} bytes"


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--interval", "-1", "--interval must be a finite number of seconds above 0, got -1"),
        ("--interval", "0", "--interval must be a finite number of seconds above 0, got 0"),
        ("--interval", "nan", "--interval must be a finite number of seconds above 0, got nan"),
        ("--cooldown", "-1", "--cooldown must be a finite number of seconds, 0 or more, got -1"),
        ("--cooldown", "nan", "--cooldown must be a finite number of seconds, 0 or more, got nan"),
    ],
)
def test_watch_refuses_an_interval_that_would_spin(tmp_path: Path, option: str, value: str, expected: str) -> None:
    inventory = write(tmp_path / "opsgraph.yaml", yaml.safe_dump({"resources": [REDIS]}))
    state = tmp_path / "state"
    result = opsgraph("watch", "-i", str(inventory), "--state-dir", str(state), option, value)
    assert error_of(result, 2) == expected
    assert not state.exists()  # refused before anything ran


@pytest.mark.parametrize("command", [["incidents"], ["incidents", "show", "inc-1"], ["status"], ["fix"]])
def test_a_state_dir_that_is_a_file_or_has_no_parent_is_refused(tmp_path: Path, command: list[str]) -> None:
    write(tmp_path / "opsgraph.yaml", yaml.safe_dump({"resources": [REDIS]}))
    a_file = write(tmp_path / "a-file", "not a folder\n")
    message = error_of(opsgraph(*command, "--state-dir", str(a_file)), 2)
    assert message == f"state folder {a_file} (--state-dir or OPSGRAPH_HOME) is not a folder"
    orphan = tmp_path / "no-such-parent" / "state"
    message = error_of(opsgraph(*command, "--state-dir", str(orphan)), 2)
    assert message == (
        f"state folder {orphan} (--state-dir or OPSGRAPH_HOME): its parent {orphan.parent} is not an existing folder"
    )
    assert not orphan.parent.exists()


def test_user_text_is_never_markup(tmp_path: Path) -> None:
    state = tmp_path / "[/bold]" / "state"
    state.parent.mkdir(parents=True)
    shown = subprocess.run(
        [sys.executable, "-m", "opsgraph", "incidents", "show", "[/]", "--state-dir", str(state)],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert shown.returncode == 1 and "Traceback" not in shown.stderr, shown.stderr
    assert shown.stderr == f"error: no incident '[/]' in {state / 'ledger.sqlite'}\n"

    inventory = write(tmp_path / "[/bold]" / "opsgraph.yaml", yaml.safe_dump({"resources": [REDIS]}))
    aimed = opsgraph("inject", "redis-memory-pressure", "--resource", "[/]", "-i", str(inventory),
                     "--state-dir", str(state))  # fmt: skip
    assert error_of(aimed, 2) == "no resource named '[/]' in the inventory"

    broken = write(tmp_path / "[/bold]" / "[x]bad.yaml", "resources: [\n")
    message = error_of(opsgraph("scan", "-i", str(broken)), 2)
    assert message == f"{broken} is not valid YAML: line 2, column 1: did not find expected node content"


def test_demo_with_an_unknown_scenario_starts_no_server(tmp_path: Path) -> None:
    inventory = write(tmp_path / "opsgraph.yaml", yaml.safe_dump({"resources": [{**REDIS, "environment": "local"}]}))
    message = error_of(opsgraph("demo", "[/]no-such-fault", "--inventory", str(inventory)), 2)
    assert "[/]no-such-fault" in message
    assert not (tmp_path / ".opsgraph" / "local").exists()  # the stack was never brought up
