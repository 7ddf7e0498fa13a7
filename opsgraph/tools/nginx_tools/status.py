"""Reading nginx: stub_status, the access log's recent 5xx, a full nginx, the config test, finding its nginx.

Shared by the tools, the probe and the fault injectors; nothing here changes nginx.
"""

from __future__ import annotations

import calendar
import glob
import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from opsgraph.tools.environments.local.nginx_server import WORKER_PID_HEADER, LocalNginx
from opsgraph.tools.environments.local.process import tail_lines
from opsgraph.tools.environments.nginx_control import ConfigTest, NginxControl, master_command_line
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


# ---- a full nginx: accepts, then closes


def closed_without_answer(error: httpx.HTTPError) -> bool:
    """Whether a request was accepted and then closed or reset before any answer (not refused, not timed out).

    What nginx does with a connection when every worker connection slot is taken: the
    kernel completes the handshake, nginx accepts, finds no free slot ("worker_connections
    are not enough"), and closes it at once. A refused connection is a server that is not
    there; a timeout is a hung one; this is a full one.
    """
    if isinstance(error, httpx.RemoteProtocolError):
        return "without sending a response" in str(error)
    return isinstance(error, httpx.ReadError | httpx.WriteError)


_ESTABLISHED = "01"  # TCP state codes of /proc/net/tcp (include/net/tcp_states.h)


def established_connections(port: int) -> int:
    """Established TCP connections whose local end is ``port`` on this host, from /proc/net/tcp and tcp6.

    Counts what stub_status cannot report once nginx is full: every connection the kernel
    completed to the port, whether nginx holds it or it still waits in the accept queue.
    It is the host's view of the port, so it counts connections to any address on it.
    """
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 3 and fields[3] == _ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# ---- nginx -t of the config on disk, cached


@dataclass(frozen=True)
class _Tested:
    signature: tuple[tuple[str, int, int], ...]
    tested_at: float
    result: ConfigTest


# Re-test at most this often when no file changed: `nginx -t` forks a process, and the
# probe runs every 100 ms; a result can go stale without an edit (a certificate removed).
CONFIG_TEST_TTL_S = 60.0
_INCLUDE = re.compile(r"^\s*include\s+([^;#]+);", re.MULTILINE)
_MAX_CONFIG_FILES = 200
_tested: dict[tuple[str, ...], _Tested] = {}


def _config_files(config_path: Path) -> list[Path]:
    """The config file and the files it includes (recursively, as far as globs on disk show them).

    nginx resolves a relative include against the main config file's directory.
    """
    base = config_path.parent
    found: list[Path] = []
    pending = [config_path]
    while pending and len(found) < _MAX_CONFIG_FILES:
        path = pending.pop()
        if path in found:
            continue
        found.append(path)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for pattern in _INCLUDE.findall(text):
            pattern = pattern.strip().strip("\"'")
            absolute = pattern if pattern.startswith("/") else str(base / pattern)
            pending += sorted(Path(match) for match in glob.glob(absolute))
    return found


def _signature(config_path: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of every config file: what changes when someone edits the config."""
    signature = []
    for path in _config_files(config_path):
        try:
            stat = path.stat()
        except OSError:
            signature.append((str(path), -1, -1))
        else:
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


def config_test(nginx: NginxControl) -> ConfigTest:
    """`nginx -t` of the config on disk, re-run only when a config file changed (or after CONFIG_TEST_TTL_S).

    The probe asks this several times a second; keyed by the config files' (mtime, size),
    an edit is tested within one probe interval and an unchanged config is not re-tested.
    """
    key = tuple(nginx.command())
    signature = _signature(nginx.config_path)
    cached = _tested.get(key)
    if cached is not None and cached.signature == signature and time.monotonic() - cached.tested_at < CONFIG_TEST_TTL_S:
        return cached.result
    result = nginx.test_config()
    _tested[key] = _Tested(signature, time.monotonic(), result)
    return result


# ---- the last time nginx_clear_connections freed this nginx


class ClearRecord(BaseModel):
    """When nginx_clear_connections last reloaded an nginx, and the workers that reload started.

    Kept in OpsGraph's state folder so that a diagnosis can tell "full" from "full again
    in the very workers our reload just gave it": then the load is real, and clearing
    again would only repeat a fix that did not hold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float
    workers: list[int]


def clear_record_path(ctx: ToolContext, resource: Resource) -> Path:
    return ctx.state_dir.resolve() / "nginx" / f"{resource.name}.last-clear.json"


def last_clear(ctx: ToolContext, resource: Resource) -> ClearRecord | None:
    """The record of the last clear, or None (never cleared, or the record is unreadable: then it is forgotten)."""
    path = clear_record_path(ctx, resource)
    try:
        return ClearRecord.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValidationError:
        path.unlink(missing_ok=True)
        return None


# ---- finding the nginx of a resource


def _option(argv: list[str], flag: str) -> str | None:
    """The value of a one-letter nginx option in an argv ("-p /x/" or "-p/x/")."""
    for index, word in enumerate(argv):
        if word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(flag) and len(word) > len(flag):
            return word[len(flag) :]
    return None


def _error_log_of(files: list[Path]) -> Path | None:
    """Which declared log is the error log: the first named like one, else the only one."""
    named = [path for path in files if "error" in path.name]
    if named:
        return named[0]
    return files[0] if len(files) == 1 else None


def external_nginx(resource: Resource) -> NginxControl | None:
    """The controls of an external nginx from its declared paths; None when no config file is declared.

    The prefix (``-p``, which relative paths in the config resolve against) is taken from
    the running master's command line, else from the declared start/restart command; when
    neither has ``-p``, nginx's compiled-in prefix is used — what a server started without
    ``-p`` has (the config file's directory would be wrong for it). The error log is the
    declared log file named like one (see `_error_log_of`).
    """
    paths = resource.external.paths
    if paths.config_file is None:
        return None
    commands = resource.external.lifecycle_commands()
    bare = NginxControl(paths.config_file, paths.pid_file, None, _error_log_of(paths.log_files), "stderr")
    master = bare.master_pid()
    sources = [master_command_line(master) if master else [], commands.start or [], commands.restart or []]
    prefix = next((found for argv in sources if (found := _option(argv, "-p"))), None)
    return replace(bare, prefix=Path(prefix)) if prefix else bare


def local_nginx(ctx: ToolContext, resource: Resource) -> LocalNginx:
    """A local resource's nginx, found through the local environment's state folder."""
    if resource.environment is not Environment.LOCAL:
        raise ToolError(
            f"{resource.name} runs in the {resource.environment} environment; its state folder is only "
            "reachable for local resources"
        )
    nginx = LocalNginx.of(ctx.state_dir, resource.name)
    if not nginx.config_path.exists():
        raise ToolError(f"{resource.name} has no nginx.conf in {nginx.folder}: start it with `opsgraph up`")
    return nginx


def nginx_of(ctx: ToolContext, resource: Resource) -> NginxControl:
    """The one lookup for tools: the nginx of a local resource (state folder) or an external one (declared paths)."""
    if resource.environment is Environment.LOCAL:
        return local_nginx(ctx, resource)
    if resource.environment is Environment.EXTERNAL:
        nginx = external_nginx(resource)
        if nginx is None:
            raise ToolError(
                f"{resource.name} is not managed by OpsGraph and its inventory entry declares no config file: "
                "set external.paths.config_file (and pid_file) so that OpsGraph can read and test its config"
            )
        return nginx
    raise ToolError(
        f"{resource.name} runs in the {resource.environment} environment; its nginx.conf is only reachable for "
        "local resources and external ones with external.paths.config_file"
    )


def serving_nginx(resource: Resource, status: StubStatus | None) -> NginxControl | None:
    """For the probe (which has no state folder): the nginx of the resource, when it can be found.

    Local: the nginx whose worker just answered stub_status (None when it did not answer).
    External: the one its declared paths describe.
    """
    if resource.environment is Environment.EXTERNAL:
        return external_nginx(resource)
    if resource.environment is not Environment.LOCAL or status is None or status.worker_pid is None:
        return None
    return LocalNginx.serving(status.worker_pid)


def running_master(nginx: NginxControl, resource: Resource) -> int:
    master = nginx.master_pid()
    if master is None:
        if nginx.pid_path is None:
            raise ToolError(
                f"{resource.name}: no pid file is declared, so OpsGraph cannot find its nginx master; "
                "set external.paths.pid_file"
            )
        raise ToolError(f"nginx of {resource.name} is not running (no live pid in {nginx.pid_path}); restart it")
    return master
