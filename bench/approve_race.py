"""Concurrent approvals: two operators (or an operator and a starting watcher) answer at the same moment.

Target: a real private redis-server, killed to make the fault; `opsgraph watch` pauses the
incident at its `redis_restart` approval (a non-idempotent step). Then, per pair, both
contenders start at once:

- `approve-approve`: `opsgraph approve ID --by alice` and `--by bob`;
- `approve-watch`: `opsgraph approve ID` and a fresh `opsgraph watch` (which repairs and
  resumes what it finds unfinished on start).

Counted: server starts in redis-server's own log (exactly one per pair is right), the step's
intent and result rows in the ledger (exactly one each: every execution is recorded), how
many approvals were applied (one) and whether the incident resolved.

    uv run python -m bench.approve_race [--pairs 20] [--kinds approve-approve,approve-watch]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.kill_matrix import Target, running_target, wait_for_pause
from bench.redis_memory_pressure import free_port
from opsgraph.graph.ledger import OPEN_STATUSES

KINDS = ("approve-approve", "approve-watch")
_DEADLINE_S = 90.0


@dataclass(frozen=True)
class Pair:
    kind: str
    starts: int
    intents: int
    results: int
    applied: int  # approve commands that exited 0
    resolved: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.starts == 1 and self.intents == 1 and self.results == 1 and self.applied == 1 and self.resolved


def one_pair(target: Target, kind: str) -> Pair:
    starts_before = target.starts()
    incident_id = wait_for_pause(target)
    contenders = [target.cli("approve", incident_id, "--by", "alice")]
    if kind == "approve-approve":
        contenders.append(target.cli("approve", incident_id, "--by", "bob"))
    else:
        contenders.append(target.cli("watch", "--interval", "0.3", "--cooldown", "0"))
    approvals = contenders if kind == "approve-approve" else contenders[:1]
    codes = [process.wait(timeout=_DEADLINE_S) for process in approvals]
    if kind == "approve-watch":
        watcher = contenders[1]
        deadline = time.monotonic() + _DEADLINE_S
        while (record := target.ledger.incident(incident_id)) and record["status"] in OPEN_STATUSES:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        watcher.terminate()
        watcher.communicate(timeout=_DEADLINE_S)
    record = target.ledger.incident(incident_id)
    rows = [row for row in target.ledger.actions(incident_id) if row["tool"] == "redis_restart"]
    status = str(record["status"]) if record else "missing"
    return Pair(
        kind=kind,
        starts=target.starts() - starts_before,
        intents=sum(row["phase"] == "intent" for row in rows),
        results=sum(row["phase"] == "result" for row in rows),
        applied=sum(code == 0 for code in codes),
        resolved=status == "resolved",
        detail=f"{incident_id}: {status}; approve exit codes {codes}",
    )


def run_pairs(folder: Path, port: int, kinds: tuple[str, ...], pairs: int) -> list[Pair]:
    with running_target(folder, port) as target:
        return [one_pair(target, kind) for kind in kinds for _ in range(pairs)]


def table(results: list[Pair]) -> str:
    header = f"{'contenders':<16} {'pairs':>6} {'starts':>6} {'intent':>6} {'result':>6} {'applied':>7} {'fixed':>6}"
    lines = [header, "-" * len(header)]
    for kind in dict.fromkeys(pair.kind for pair in results):
        group = [pair for pair in results if pair.kind == kind]
        lines.append(
            f"{kind:<16} {len(group):>6} {sum(p.starts for p in group):>6} {sum(p.intents for p in group):>6} "
            f"{sum(p.results for p in group):>6} {sum(p.applied for p in group):>7} {sum(p.resolved for p in group):>6}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="pairs per kind of contender")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS))
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds.split(","))
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kind(s) {sorted(unknown)}; known: {', '.join(KINDS)}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opsgraph-race-") as folder:
        results = run_pairs(Path(folder), free_port(), kinds, args.pairs)
    print(table(results))
    print(f"\n{len(results)} pairs in {time.monotonic() - started:.0f} s on {os.cpu_count()} cores")
    print("right: per pair 1 server start, 1 intent row, 1 result row, 1 applied approval, resolved")
    broken = [pair for pair in results if not pair.ok]
    for pair in broken:
        print(f"FAILED {pair.kind}: {pair.detail}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
