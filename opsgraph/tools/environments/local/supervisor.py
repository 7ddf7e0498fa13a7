"""A minimal process supervisor for local servers that do not daemonize (the sample app).

    python -m opsgraph.tools.environments.local.supervisor --pidfile P --log L -- COMMAND...

It detaches from the caller, keeps COMMAND running (restarting it after a crash,
with a growing pause so a broken app does not spin), appends its output to the log,
and on SIGTERM stops the child and exits. Its process name is `opsgraph-superv` so a
stale pid file can never be mistaken for it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from opsgraph.tools.atomic_file import write_atomic

PROCESS_NAME = "opsgraph-superv"
_PR_SET_NAME = 15
_MAX_PAUSE_S = 10.0
_STOP_TIMEOUT_S = 10.0


def _name_this_process() -> None:
    libc = ctypes.CDLL(None)
    libc.prctl(_PR_SET_NAME, PROCESS_NAME.encode(), 0, 0, 0)


def _note(log: Path, text: str) -> None:
    with log.open("a") as handle:
        handle.write(f'{{"ts": {time.time():.3f}, "level": "info", "event": "supervisor", "message": "{text}"}}\n')


def supervise(command: list[str], log: Path, stop: threading.Event) -> None:
    pause = 0.5
    while not stop.is_set():
        started = time.monotonic()
        with log.open("ab") as output:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        _note(log, f"started pid {child.pid}")
        while child.poll() is None and not stop.wait(0.2):
            pass
        if stop.is_set():
            child.terminate()
            try:
                child.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            _note(log, f"stopped pid {child.pid}")
            return
        _note(log, f"pid {child.pid} exited with status {child.returncode}; restarting in {pause:.1f} s")
        pause = 0.5 if time.monotonic() - started > 30 else min(pause * 2, _MAX_PAUSE_S)
        stop.wait(pause)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")
    _name_this_process()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    write_atomic(args.pidfile, f"{os.getpid()}\n")
    try:
        supervise(command, args.log, stop)
    finally:
        args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
