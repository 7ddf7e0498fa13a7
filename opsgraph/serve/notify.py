"""Notifications out: Slack-compatible incoming webhooks and PagerDuty Events API v2, driven by the ledger.

The notifier reads the ledger, not the graph, so it covers every incident whichever process
drove it (`watch`, `serve`, `opsgraph approve`, the chat). `opsgraph serve` runs it in a thread
of its own: every `poll_s` it derives each incident's events from the ledger's rows and delivers
the ones still due, on a small thread pool of its own, so a slow or failing receiver delays
neither the graph nor the other deliveries.

Events (the `event` column of the ledger's `notifications` rows):

- `opened` — the incident's row exists (at `opened_at`);
- `awaiting_approval:K` — the incident waits for its K-th answer. Keyed by the ordinal of the
  wait (answers already given + 1, counted from the `approvals` rows) rather than by plan number,
  which the ledger's public methods do not show for an unanswered plan; a revised or retried
  plan that waits again is a new K and is announced again. Only the wait going on is announced:
  one answered before the notifier saw it is news to nobody. A wait that follows an answer is
  trusted once the answer is `settle_s` old (the answer's rows are written just before the status
  leaves awaiting_approval; a read between the two must not announce a wait that is not there);
- `answered:K` — the K-th wait was answered (at the answer's `decided_at`); PagerDuty only;
- `resolved` — closed as resolved;
- `escalated` — closed needing a human: escalated, data_safety_failure (also once released), or
  a closing status this module does not know (a page too many rather than one too few);
- `closed` — closed unfixed by a human's own decision or as bookkeeping: rejected (the person who
  rejected owns what comes next), paused (someone paused OpsGraph on purpose), abandoned (the
  run died before any progress; a new incident opens if the fault stands).

Channels: Slack hears every event but `answered`. PagerDuty (dedup key = incident id) is
triggered when a human is needed (`awaiting_approval:K`, `escalated`), acknowledged when a wait
it was triggered for is answered with approve or revise (the incident runs on), and resolved on
`resolved` or `closed` — acknowledge and resolve only for an incident it did trigger.

Each event is delivered at most once per channel: its row (`sending`, then `sent` or `failed`,
with the attempts and the last error) is written before the first attempt, and a row, whatever
its status, means done — so a restart resends nothing, and a row a killed notifier left in
`sending` is marked failed ("interrupted"), not sent again. A 5xx, a 429 or a connection error
is retried with exponential backoff up to `attempts`; another 4xx is not. Each final failure is
reported once through `say`.

No flood from the past: an event is due only if it happened at or after the notifier's epoch
minus `grace_s`. The epoch is the notifier's first start, as this ledger remembers it: the time
of the oldest notification row, or, while there is none, the start of this process. Incidents
from before the first start stay silent; what happened while a notifier that has sent before was
down is delivered when it comes back (once, as always).

This module delivers; `opsgraph.serve.events` derives the events from the ledger's rows and
`opsgraph.serve.channels` builds what each channel is sent.

Secrets (the webhook URL, which holds its token, and the routing key) never reach a log line, a
`say` line or a ledger row: every error text is redacted with them as known values.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from opsgraph.graph.ledger import OPEN_STATUSES, Ledger
from opsgraph.graph.watch import Say
from opsgraph.serve.channels import Channel, Facts, PagerDutyChannel, SlackChannel, cut
from opsgraph.serve.events import Event, answers_of, incident_events
from opsgraph.settings import Settings
from opsgraph.tools.redaction import redact, redact_value

log = logging.getLogger(__name__)

_EXCERPT_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class NotifySettings:
    """Where notifications go and how hard they are tried. Secrets stay `SecretStr` (a repr shows none)."""

    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    public_url: str | None = None  # `opsgraph serve` as people reach it: the API links
    chat_url: str | None = None  # the chat, linked from what waits for a human
    poll_s: float = 1.0  # how often the ledger is read
    attempts: int = 5  # tries per delivery (5xx, 429, connection errors); another 4xx is tried once
    backoff_s: float = 1.0  # wait before the 2nd try, doubling after each
    backoff_max_s: float = 30.0  # ... up to this
    timeout_s: float = 5.0  # per HTTP request
    grace_s: float = 60.0  # events this much older than the notifier's first start are still sent
    settle_s: float = 3.0  # a wait right after an answer is trusted once the answer is this old
    workers: int = 4  # deliveries at once (one incident's deliveries to one channel go in order)
    scan_limit: int = 200  # the newest incidents looked at on each poll
    drain_s: float = 10.0  # on stop, how long deliveries in flight may finish

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Self:
        """The channels and links `OPSGRAPH_*` name; `overrides` set the timing (tests use small values)."""
        return cls(
            slack_webhook_url=settings.slack_webhook_url,
            pagerduty_routing_key=settings.pagerduty_routing_key,
            pagerduty_url=settings.pagerduty_url,
            public_url=settings.public_url,
            chat_url=settings.chat_url,
            **overrides,
        )


@dataclass(frozen=True)
class Delivery:
    """One event queued for one channel by a sweep."""

    incident_id: str
    event: str
    channel: str


def channels_of(settings: NotifySettings) -> list[Channel]:
    channels: list[Channel] = []
    if settings.slack_webhook_url is not None and settings.slack_webhook_url.get_secret_value():
        channels.append(SlackChannel(settings.slack_webhook_url.get_secret_value()))
    if settings.pagerduty_routing_key is not None and settings.pagerduty_routing_key.get_secret_value():
        channels.append(PagerDutyChannel(settings.pagerduty_url, settings.pagerduty_routing_key.get_secret_value()))
    return channels


def secrets_of(settings: NotifySettings) -> tuple[str, ...]:
    """The values to mask in every text: the webhook URL, its path, query and long path segments, the key."""
    found: list[str] = []
    if settings.slack_webhook_url is not None and (url := settings.slack_webhook_url.get_secret_value()):
        parts = urlsplit(url)
        found += [url, parts.path, parts.query, *(s for s in parts.path.split("/") if len(s) >= 12)]
    if settings.pagerduty_routing_key is not None:
        found.append(settings.pagerduty_routing_key.get_secret_value())
    return tuple(value for value in found if len(value) >= 8)


class _RedactingFilter(logging.Filter):
    """Masks the secrets in every record of a logger: httpx logs each request's full URL at INFO."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self._secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


@dataclass(frozen=True)
class _Attempt:
    ok: bool
    retry: bool = False
    error: str | None = None
    retry_after_s: float | None = None


class Notifier:
    """Tells Slack and PagerDuty about incidents, from the ledger (see the module doc)."""

    def __init__(self, ledger: Ledger, settings: NotifySettings, say: Say) -> None:
        self._ledger = ledger
        self._settings = settings
        self._say = say
        self._channels = channels_of(settings)
        self._secrets = secrets_of(settings)
        self._started = time.time()
        self._epoch: float | None = None  # read at the first sweep
        self._settled: set[str] = set()  # closed incidents with nothing left to send
        self._in_flight: dict[tuple[str, str], Future[None]] = {}  # (incident, channel) -> its deliveries
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._said_idle = False
        self._client = httpx.Client(timeout=httpx.Timeout(settings.timeout_s, connect=min(settings.timeout_s, 3.0)))
        self._pool = ThreadPoolExecutor(max(settings.workers, 1), thread_name_prefix="notify")
        self._log_filter = _RedactingFilter(self._secrets)
        logging.getLogger("httpx").addFilter(self._log_filter)  # removed again by close()

    @property
    def channels(self) -> list[str]:
        return [channel.name for channel in self._channels]

    # the loop ------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Poll the ledger until `stop` is set, then let deliveries in flight finish (up to `drain_s`)."""
        if not self._channels:
            self._say_idle()
            self.close(0)
            return
        self._say(f"notifications: {', '.join(self.channels)}, from the ledger every {self._settings.poll_s:g} s")
        failing: str | None = None
        try:
            while not stop.is_set():
                try:
                    self.sweep()
                    failing = None
                except Exception as error:  # noqa: BLE001 — logged with its (redacted) traceback; the next poll tries
                    text = self._clean(f"{type(error).__name__}: {error}")
                    if text != failing:  # once per distinct failure, not once per poll
                        self._log_crash("notifications: a sweep of the ledger failed")
                        self._say(f"notifications: reading the ledger failed ({text}); trying again", "error")
                    failing = text
                stop.wait(self._settings.poll_s)
        finally:
            self.close(self._settings.drain_s)

    def sweep(self) -> list[Delivery]:
        """One poll: queue every due event not yet recorded, per incident and channel in order; return them."""
        if not self._channels:
            self._say_idle()
            return []
        cutoff = self._cutoff()
        read_at = time.time()
        queued: list[Delivery] = []
        for row in self._ledger.incidents(self._settings.scan_limit):
            incident_id = row["incident_id"]
            closed = row["status"] not in OPEN_STATUSES
            if incident_id in self._settled:
                continue
            if closed and (row["closed_at"] or row["opened_at"]) < cutoff:
                self._settled.add(incident_id)  # ended before the notifier's time: nothing of it is due
                continue
            busy = False
            events = incident_events(
                row, answers_of(self._ledger.approvals(incident_id)), read_at, self._settings.settle_s
            )
            recorded = self._recorded(incident_id)
            for channel in self._channels:
                with self._lock:
                    if (incident_id, channel.name) in self._in_flight:
                        busy = True
                        continue
                due = self._due(channel, events, recorded.get(channel.name, {}), cutoff)
                if due:
                    busy = True
                    self._submit(channel, row, due)
                    queued += [Delivery(incident_id, event.name, channel.name) for event in due]
            if closed and not busy:
                self._settled.add(incident_id)
        return queued

    def drain(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the deliveries in flight; True if none is left."""
        with self._lock:
            futures = list(self._in_flight.values())
        _, left = wait(futures, timeout=timeout_s)
        return not left

    def close(self, timeout_s: float | None = None) -> None:
        """Let deliveries in flight finish for up to `timeout_s` (default `drain_s`), cut the rest's backoffs short
        (recorded failed), and release the HTTP client and the threads."""
        self.drain(self._settings.drain_s if timeout_s is None else timeout_s)
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        logging.getLogger("httpx").removeFilter(self._log_filter)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # what is due ------------------------------------------------------------------
    def _cutoff(self) -> float:
        """The notifier's epoch (its first start, as the ledger remembers it) minus the grace."""
        if self._epoch is None:
            oldest = min((row["at"] for row in self._ledger.notifications()), default=self._started)
            self._epoch = min(oldest, self._started)
        return self._epoch - self._settings.grace_s

    def _recorded(self, incident_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The incident's notification rows by channel and event; a row a dead notifier left `sending` is failed."""
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for row in self._ledger.notifications(incident_id):
            if row["status"] == "sending" and row["at"] < self._started:
                with self._lock:
                    ours = (incident_id, row["channel"]) in self._in_flight
                if not ours:
                    row = self._interrupted(row)
            rows.setdefault(row["channel"], {})[row["event"]] = row
        return rows

    def _interrupted(self, row: dict[str, Any]) -> dict[str, Any]:
        error = "interrupted: the notifier stopped during this delivery; not sent again (at most once)"
        self._ledger.record_notification(
            row["incident_id"], row["event"], row["channel"], "failed", row["attempts"], error
        )
        self._report_failure(row["incident_id"], row["event"], row["channel"], row["attempts"], error)
        return {**row, "status": "failed", "error": error}

    @staticmethod
    def _due(channel: Channel, events: list[Event], recorded: dict[str, dict[str, Any]], cutoff: float) -> list[Event]:
        sent = {name for name, row in recorded.items() if row["status"] == "sent"}
        due = []
        for event in events:
            if event.at < cutoff or event.name in recorded or not channel.wants(event, sent):
                continue
            due.append(event)
            sent.add(event.name)  # queued before the next: a trigger queued here lets its ack follow
        return due

    # delivering ------------------------------------------------------------------
    def _submit(self, channel: Channel, row: dict[str, Any], events: list[Event]) -> None:
        key = (row["incident_id"], channel.name)
        with self._lock:
            self._in_flight[key] = self._pool.submit(self._deliver_all, channel, row, events)

    def _deliver_all(self, channel: Channel, row: dict[str, Any], events: list[Event]) -> None:
        """One incident's due events to one channel, in order; each is checked again just before it goes."""
        incident_id = row["incident_id"]
        current: Event | None = None
        try:
            facts: Facts | None = None
            for event in events:
                recorded = self._ledger.notifications(incident_id)
                mine = {r["event"]: r for r in recorded if r["channel"] == channel.name}
                sent = {name for name, r in mine.items() if r["status"] == "sent"}
                if event.name in mine or not channel.wants(event, sent):
                    continue  # another notifier sent it, or the trigger it needed failed
                if facts is None or event.kind in ("resolved", "escalated", "closed"):
                    facts = self._facts(row)
                body = channel.body(event, facts)
                current = event
                self._deliver(channel, event, body)
                current = None
        except Exception as error:  # noqa: BLE001 — logged with its (redacted) traceback; the row says failed
            self._log_crash(f"notifications: delivering to {channel.name} crashed")
            text = self._clean(f"{type(error).__name__}: {error}")
            if current is not None:
                self._ledger.record_notification(incident_id, current.name, channel.name, "failed", 0, text)
            self._say(f"{incident_id}: notifying {channel.name} crashed: {text}", "error", incident_id=incident_id)
        finally:
            with self._lock:
                self._in_flight.pop((incident_id, channel.name), None)

    def _facts(self, row: dict[str, Any]) -> Facts:
        record = self._ledger.incident(row["incident_id"])
        fresh = {**row, **{k: record[k] for k in ("status", "closed_at")}} if record else row
        report = record.get("report") if record else None
        settings = self._settings
        return Facts(fresh, report, _base(settings.public_url), _base(settings.chat_url))

    def _deliver(self, channel: Channel, event: Event, body: dict[str, Any]) -> None:
        """Send one event: `sending`, then retries on 5xx/429/connection errors, then `sent` or `failed`."""
        incident_id = event.incident_id
        if not self._ledger.claim_notification(incident_id, event.name, channel.name):
            return  # another notifier on this ledger took it between our look and now
        # The last net: no secret goes out in what is said (the credentials are added after).
        payload = channel.seal(redact_value(body, self._secrets, by_key=False))
        settings = self._settings
        attempt, error = 0, "not attempted"
        for attempt in range(1, max(settings.attempts, 1) + 1):
            result = self._post(channel, payload)
            if result.ok:
                self._ledger.record_notification(incident_id, event.name, channel.name, "sent", attempt, None)
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                self._say(f"{incident_id}: {channel.name} told of {event.name}{tries}", incident_id=incident_id,
                          channel=channel.name, notification=event.name)  # fmt: skip
                return
            error = result.error or "failed"
            if not result.retry or attempt >= settings.attempts:
                break
            self._ledger.record_notification(incident_id, event.name, channel.name, "sending", attempt, error)
            delay = min(settings.backoff_s * 2 ** (attempt - 1), settings.backoff_max_s)
            if result.retry_after_s is not None:
                delay = min(max(delay, result.retry_after_s), settings.backoff_max_s)
            if self._closing.wait(delay):
                error += "; not tried again: the notifier stopped"
                break
        self._ledger.record_notification(incident_id, event.name, channel.name, "failed", attempt, error)
        self._report_failure(incident_id, event.name, channel.name, attempt, error)

    def _post(self, channel: Channel, payload: dict[str, Any]) -> _Attempt:
        try:
            response = self._client.post(channel.url, json=payload)
        except httpx.UnsupportedProtocol as error:  # a URL no retry can mend
            return _Attempt(ok=False, error=self._clean(f"{type(error).__name__}: {error}"))
        except httpx.TransportError as error:  # refused, reset, timed out: worth another try
            return _Attempt(ok=False, retry=True, error=self._clean(f"{type(error).__name__}: {error}"))
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return _Attempt(ok=False, error=self._clean(f"{type(error).__name__}: {error}"))
        if response.is_success:
            return _Attempt(ok=True)
        status = response.status_code
        # Redacted before it is cut, so that no secret the receiver quoted back survives in part.
        excerpt = cut(self._clean(" ".join(response.text[: 10 * _EXCERPT_CHARS].split())), _EXCERPT_CHARS)
        problem = f"HTTP {status} from {channel.name}" + (f": {excerpt}" if excerpt else "")
        return _Attempt(ok=False, retry=status == 429 or status >= 500, error=problem,
                        retry_after_s=_retry_after(response))  # fmt: skip

    # saying ------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)

    def _log_crash(self, what: str) -> None:
        """The traceback of the exception being handled, redacted: httpx's errors can quote the URL."""
        log.error("%s\n%s", what, self._clean(traceback.format_exc()))

    def _report_failure(self, incident_id: str, event: str, channel: str, attempts: int, error: str) -> None:
        self._say(
            f"{incident_id}: notifying {channel} of {event} failed after {attempts} attempt(s): {self._clean(error)}",
            "warning",
            incident_id=incident_id,
            channel=channel,
            notification=event,
        )

    def _say_idle(self) -> None:
        if not self._said_idle:
            self._said_idle = True
            self._say(
                "notifications: no channel configured (OPSGRAPH_SLACK_WEBHOOK_URL, OPSGRAPH_PAGERDUTY_ROUTING_KEY); "
                "none are sent"
            )


def _base(url: str | None) -> str | None:
    return url.rstrip("/") if url else None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header given as a number (a date form is left to the backoff)."""
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
