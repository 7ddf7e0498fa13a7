"""Running `opsgraph serve`: the watcher, the notifier and the HTTP server in one process.

uvicorn owns the main thread and its signals: SIGTERM or Ctrl-C stops accepting requests and
lets those in progress finish; then the watcher is told to stop, and it lets the incident runs in
flight finish (their checkpoints make any later resume safe either way), and the notifier drains
what it was sending. A crashed watcher thread is reported and turns `/healthz` to 503, so a
supervisor (compose's healthcheck, systemd) restarts the whole service.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import uvicorn

from opsgraph.graph.context import Context
from opsgraph.graph.watch import Say, Watcher, WatchSettings
from opsgraph.operations import Operations
from opsgraph.serve.alerts import AlertIntake
from opsgraph.serve.api import ServeRuntime, create_app
from opsgraph.serve.auth import Tokens
from opsgraph.serve.metrics import ServeMetrics
from opsgraph.serve.notify import Notifier, NotifySettings
from opsgraph.settings import load_settings


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    probing: bool = True  # False: alerts are the only detector (Alertmanager at fleet scale)
    watch: WatchSettings = field(default_factory=WatchSettings)


def serve(context: Context, settings: ServeSettings, say: Say) -> None:
    """Serve until SIGTERM/SIGINT; returns once the watcher and the notifier have stopped."""
    app_settings = load_settings()
    tokens = Tokens(app_settings.api_tokens.get_secret_value() if app_settings.api_tokens else None)
    metrics = ServeMetrics(context.ledger)
    watcher = Watcher(context, settings.watch, say, on_sweep=metrics.swept)
    stop = threading.Event()
    watching = threading.Thread(target=_watch, args=(watcher, stop, settings.probing, say), name="watcher")
    notifier = Notifier(context.ledger, NotifySettings.from_settings(app_settings), say)
    notifying = threading.Thread(target=notifier.run, args=(stop,), name="notifier", daemon=True)
    background = ThreadPoolExecutor(settings.watch.max_parallel, thread_name_prefix="api-run")
    runtime = ServeRuntime(
        operations=Operations(context),
        watcher=watcher,
        intake=AlertIntake(context, watcher, settings.watch.cooldown_s, say),
        tokens=tokens,
        metrics=metrics,
        probing=settings.probing,
        interval_s=settings.watch.interval_s,
        watcher_alive=watching.is_alive,
        started_at=time.time(),
        background=background,
        say=say,
    )
    if not tokens.configured:
        say("no OPSGRAPH_API_TOKENS: the API and the alert webhooks refuse every request", "warning")
    watching.start()
    notifying.start()
    config = uvicorn.Config(
        create_app(runtime), host=settings.host, port=settings.port, log_config=None, access_log=False,
        timeout_graceful_shutdown=30,
    )  # fmt: skip
    say(
        f"serving on http://{settings.host}:{settings.port} (API /api, alerts /alerts, /metrics, /healthz); "
        "SIGTERM or Ctrl-C stops",
        host=settings.host,
        port=settings.port,
    )
    server = uvicorn.Server(config)

    def shut_down(*_: object) -> None:
        server.should_exit = True
        stop.set()

    # uvicorn handles SIGTERM/SIGINT while it serves, then restores the handlers it found and raises
    # the signal again: with Python's default there that would kill the process before the watcher
    # and the notifier stop. With this one the re-raised signal only confirms the shutdown.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, shut_down)
    try:
        server.run()
    finally:
        stop.set()
        background.shutdown(wait=True)  # answers and fixes the API accepted run to their end or their pause
        watching.join()
        notifying.join(timeout=15)
    say("serve stopped")


def _watch(watcher: Watcher, stop: threading.Event, probing: bool, say: Say) -> None:
    try:
        watcher.run(stop, probing=probing)
    except Exception as error:  # reported; /healthz turns 503 so the supervisor restarts the service
        say(f"the watcher crashed ({type(error).__name__}: {error}); /healthz reports down", "error")
        raise
