"""Reading nginx: stub_status, the access log's recent 5xx, and finding the nginx of a resource.

Shared by the tools, the probe and the fault injectors; nothing here changes nginx.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from opsgraph.tools.environments.local.nginx_server import WORKER_PID_HEADER, LocalNginx
from opsgraph.tools.environments.local.process import tail_lines
from opsgraph.tools.inventory import Environment, Resource
from opsgraph.tools.spec import ToolContext, ToolError

STATUS_PATH = "/nginx_status"
# 5xx rate: requests of the last ERROR_WINDOW_S seconds in the access log (at most
# MAX_LOG_LINES of them), graded only from MIN_REQUESTS on — 1 error in 2 is not a rate.
ERROR_WINDOW_S = 30.0
MAX_LOG_LINES = 5000
MIN_REQUESTS = 10

# ---- stub_status


@dataclass(frozen=True)
class StubStatus:
    """nginx's own counters: connections now, and accepted / handled / requests since start."""

    active: int
    accepts: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int
    worker_pid: int | None  # the worker that answered (local nginx only)

    @property
    def dropped(self) -> int:
        """Connections accepted but closed at once for lack of worker_connections."""
        return self.accepts - self.handled


_STUB = re.compile(
    r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+"
    r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


def read_stub_status(resource: Resource, timeout_s: float = 3.0) -> StubStatus:
    """GET /nginx_status; raises httpx.HTTPError if nginx does not answer, ValueError if it is not stub_status."""
    url = f"http://{resource.connection.host}:{resource.connection.port}{STATUS_PATH}"
    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    match = _STUB.search(response.text)
    if match is None:
        raise ValueError(f"{url} did not return nginx stub_status output")
    pid = response.headers.get(WORKER_PID_HEADER, "")
    active, accepts, handled, requests, reading, writing, waiting = (int(value) for value in match.groups())
    return StubStatus(
        active, accepts, handled, requests, reading, writing, waiting, int(pid) if pid.isdigit() else None
    )


# ---- the access log (the `opsgraph` log format of the local environment)

_MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_ACCESS = re.compile(
    r'\[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\] "[^"]*" (\d{3}) \S+'
    r'(?: "[^"]*" "[^"]*" "[^"]*" "([^"]*)")?'
)


def _logged_at(match: re.Match[str]) -> float:
    """$time_local as epoch seconds; month names by table, since %b follows the locale."""
    day, month, year, hour, minute, second, sign, offset_h, offset_m = match.groups()[:9]
    fields = (int(year), _MONTHS.get(month, 1), int(day), int(hour), int(minute), int(second))
    offset = (int(offset_h) * 3600 + int(offset_m) * 60) * (1 if sign == "+" else -1)
    return calendar.timegm(fields) - offset


def _upstream_answered(bytes_received: str | None) -> bool:
    """Whether the (last) upstream sent a response: "$upstream_bytes_received" lists one value
    per upstream tried ("0, 4210"); 0 means nginx got nothing and made the answer itself."""
    last = re.split("[,:]", bytes_received or "-")[-1].strip()
    return last.isdigit() and int(last) > 0


@dataclass(frozen=True)
class RecentRequests:
    """What the access log says about the last ``window_s`` seconds.

    A 5xx is *relayed* when the upstream answered it (the app failed: its own incident)
    and *nginx-made* otherwise (upstream unreachable or timed out, nginx's own error).
    Only nginx-made ones are graded: grading relayed ones would open a second incident,
    on nginx, for every fault of the app behind it.
    """

    window_s: float
    total: int
    errors_5xx: int
    relayed_5xx: int
    by_status: dict[str, int]

    @property
    def nginx_5xx(self) -> int:
        return self.errors_5xx - self.relayed_5xx

    @property
    def error_rate_pct(self) -> float | None:
        """The share of nginx-made 5xx, or None below MIN_REQUESTS requests."""
        return 100.0 * self.nginx_5xx / self.total if self.total >= MIN_REQUESTS else None


def recent_requests(access_log: Path, window_s: float = ERROR_WINDOW_S) -> RecentRequests:
    """Requests and 5xx answers of the last ``window_s`` seconds (of the last MAX_LOG_LINES lines).

    Real traffic rather than requests of our own: a probe that asked nginx itself would
    measure its own few requests and miss what users get.
    """
    since = time.time() - window_s
    statuses: Counter[str] = Counter()
    relayed = 0
    for line in tail_lines(access_log, MAX_LOG_LINES):
        match = _ACCESS.search(line)
        if match is None or _logged_at(match) < since:
            continue
        status = match[10]
        statuses[status] += 1
        relayed += status.startswith("5") and _upstream_answered(match[11])
    errors = sum(count for status, count in statuses.items() if status.startswith("5"))
    return RecentRequests(window_s, sum(statuses.values()), errors, relayed, dict(sorted(statuses.items())))


# ---- finding the nginx of a resource


def local_nginx(ctx: ToolContext, resource: Resource) -> LocalNginx:
    """The one lookup for tools: a local resource's nginx, through the local environment's state folder."""
    if resource.environment is not Environment.LOCAL:
        raise ToolError(
            f"{resource.name} runs in the {resource.environment} environment; its nginx.conf is only "
            "reachable for local resources"
        )
    nginx = LocalNginx.of(ctx.state_dir, resource.name)
    if not nginx.config_path.exists():
        raise ToolError(f"{resource.name} has no nginx.conf in {nginx.folder}: start it with `opsgraph up`")
    return nginx


def serving_nginx(resource: Resource, status: StubStatus) -> LocalNginx | None:
    """For the probe (which has no state folder): the local nginx that just answered, if it is one."""
    if resource.environment is not Environment.LOCAL or status.worker_pid is None:
        return None
    return LocalNginx.serving(status.worker_pid)


def running_master(nginx: LocalNginx, resource: Resource) -> int:
    master = nginx.master_pid()
    if master is None:
        raise ToolError(f"nginx of {resource.name} is not running (no live pid in {nginx.pid_path}); restart it")
    return master
