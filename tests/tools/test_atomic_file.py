"""write_atomic: a file replaced by it is the old content or the new, even when the writer is killed mid-write."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from opsgraph.tools.atomic_file import write_atomic

pytestmark = pytest.mark.timeout(180)

KILLS = 25
SIZE = 4 * 2**20  # large enough that the writer spends nearly all its time inside write_atomic
OLD, NEW = b"o" * SIZE, b"n" * SIZE

# Writes OLD once, says so, then replaces the file with NEW and OLD in turn until it is killed.
WRITER = f"""
import sys
from pathlib import Path
from opsgraph.tools.atomic_file import write_atomic

path = Path(sys.argv[1])
old, new = b"o" * {SIZE}, b"n" * {SIZE}
write_atomic(path, old)
print("written", flush=True)
while True:
    write_atomic(path, new)
    write_atomic(path, old)
"""


def test_a_writer_killed_at_a_random_moment_never_leaves_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "resource.json"
    interrupted = 0
    for _ in range(KILLS):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "written\n"
            with contextlib.suppress(subprocess.TimeoutExpired):  # a random moment; it never exits by itself
                writer.wait(timeout=random.uniform(0, 0.3))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        content = target.read_bytes()
        assert content in (OLD, NEW), f"partial file: {len(content)} bytes"
        strays = [p for p in tmp_path.iterdir() if p != target]
        interrupted += bool(strays)
        for stray in strays:  # a write cut off leaves only its hidden temporary file behind
            assert stray.name.startswith(".resource.json.") and stray.name.endswith(".tmp")
            stray.unlink()
    assert interrupted > 0, "no kill landed inside a write: the test proved nothing"


def test_text_and_bytes_replace_the_file_and_leave_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "opsgraph.conf"
    write_atomic(target, "port = 5433\n")
    assert target.read_text() == "port = 5433\n"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert list(tmp_path.iterdir()) == [target]


def test_a_new_file_gets_the_umask_mode_and_a_replaced_one_keeps_its_mode(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    write_atomic(fresh, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask

    config = tmp_path / "nginx.conf"
    config.write_text("old")
    config.chmod(0o640)
    write_atomic(config, "new")
    assert (config.read_text(), config.stat().st_mode & 0o777) == ("new", 0o640)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
