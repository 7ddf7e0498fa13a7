"""Notifications out, on real incidents against a real Redis: Slack and PagerDuty are local HTTP receivers.

`serve.receivers` stands in for Slack's incoming webhook and PagerDuty's Events API v2; the
notifier reads the ledger the incident graphs write. Tests drive it with `sweep()` and `drain()`
(one poll at a time, deterministic), or run it in its thread as `opsgraph serve` does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import ScriptedReasoner, Stack, free_port, redis_resource, running_stack, wait_for

from opsgraph.graph.ledger import Ledger
from opsgraph.operations import Operations
from opsgraph.serve.events import answers_of, incident_events
from opsgraph.serve.notify import Notifier, NotifySettings
from opsgraph.settings import Settings, load_settings
from opsgraph.tools.connections import redis_client
from opsgraph.tools.faults import fill_redis_memory
from serve.receivers import Receiver, pagerduty_stand_in, slack_stand_in

MB = 2**20
# Secrets of the kinds the real services use: the webhook URL's path is Slack's token, the routing key PagerDuty's.
SLACK_TOKEN = "xq7Rb2LmN9vTz4KpW1sYc8Hd"
ROUTING_KEY = "R0ut1ngK3yF0rTh3Pag3rDutyStandIn"
PUBLIC = "https://opsgraph.example.com"
CHAT = "https://chat.example.com"
# Test speed: a poll every 50 ms, three tries 10 ms then 20 ms apart.
FAST: dict[str, Any] = {
    "poll_s": 0.05,
    "attempts": 3,
    "backoff_s": 0.01,
    "backoff_max_s": 0.05,
    "settle_s": 0.2,
    "timeout_s": 2.0,
}


class Said:
    """A `Say` that keeps what the notifier said."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, text: str, level: str = "info", **fields: Any) -> None:
        self.lines.append((level, text, fields))

    def at(self, level: str) -> list[str]:
        return [text for lvl, text, _ in self.lines if lvl == level]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, [redis_resource()]) as running:  # maxmemory 32 MiB
        fill_redis_memory(running.inventory.get("cache"))
        yield running


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with slack_stand_in() as receiver:
        yield receiver


@pytest.fixture
def pagerduty() -> Iterator[Receiver]:
    with pagerduty_stand_in() as receiver:
        yield receiver


def settings_for(
    slack: Receiver | None = None, pagerduty: Receiver | str | None = None, **timing: Any
) -> NotifySettings:
    """The settings `opsgraph serve` would build from OPSGRAPH_*, pointed at the stand-ins, at test speed."""
    values: dict[str, Any] = {"public_url": PUBLIC + "/", "chat_url": CHAT}  # none from the environment
    values |= {"slack_webhook_url": None, "pagerduty_routing_key": None}
    if slack is not None:
        values["slack_webhook_url"] = f"{slack.url}/services/T0OPS/B0OPS/{SLACK_TOKEN}"
    if pagerduty is not None:
        values["pagerduty_routing_key"] = ROUTING_KEY
        values["pagerduty_url"] = pagerduty if isinstance(pagerduty, str) else f"{pagerduty.url}/v2/enqueue"
    return NotifySettings.from_settings(Settings(**values), **{**FAST, **timing})


def sweep_and_drain(notifier: Notifier) -> set[tuple[str, str]]:
    queued = notifier.sweep()
    assert notifier.drain(30), "deliveries still in flight after 30 s"
    return {(d.event, d.channel) for d in queued}


def approve(ops: Operations, incident_id: str, decision: str = "approve", **extra: str) -> dict[str, Any]:
    pending = ops.pending_for(incident_id)
    assert pending is not None
    answer = {"decision": decision, "by": "alice", "digests": pending.digests, **extra}
    return ops.answer(pending, answer).values


def rows(ledger: Ledger, incident_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row["event"], row["channel"]): row for row in ledger.notifications(incident_id)}


def refill(stack: Stack) -> None:
    """The fault again, at the size it had: a fix raised maxmemory, so the pressure is put back from scratch."""
    cache = stack.inventory.get("cache")
    client = redis_client(cache)
    client.flushall()
    client.config_set("maxmemory", 32 * MB)
    fill_redis_memory(cache)


def test_a_risky_fix_tells_slack_each_step_and_pages_until_it_resolves(
    stack: Stack, slack: Receiver, pagerduty: Receiver
) -> None:
    ops = Operations(stack.context(approval="risky"))
    with Notifier(ops.ledger, settings_for(slack, pagerduty), Said()) as notifier:
        incident_id = ops.new_incident_id("cache")
        assert ops.start_fix("cache", incident_id).pending is not None
        assert sweep_and_drain(notifier) == {
            ("opened", "slack"), ("awaiting_approval:1", "slack"), ("awaiting_approval:1", "pagerduty"),
        }  # fmt: skip
        assert notifier.sweep() == []  # each once

        done = approve(ops, incident_id)
        assert done["outcome"] == "resolved"
        assert sweep_and_drain(notifier) == {
            ("answered:1", "pagerduty"),
            ("resolved", "slack"),
            ("resolved", "pagerduty"),
        }
        assert notifier.sweep() == []

    opened, waiting, resolved = slack.accepted()
    assert all(set(body) == {"text", "blocks"} and body["blocks"] for body in (opened, waiting, resolved))
    assert opened["text"].startswith(f"OpsGraph opened incident {incident_id}: cache has redis_memory_pressure")
    assert "awaiting approval" in waiting["text"] and "cache" in waiting["text"]
    for link in (
        CHAT,
        f"POST {PUBLIC}/api/approvals/{incident_id}",
        f"{PUBLIC}/api/incidents/{incident_id}",
        f"opsgraph approve {incident_id}",
    ):
        assert link in waiting["text"], link
    assert {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Open the chat"}, "url": CHAT},
        {"type": "button", "text": {"type": "plain_text", "text": "Incident record"},
         "url": f"{PUBLIC}/api/incidents/{incident_id}"},
    ]} in waiting["blocks"]  # fmt: skip
    report = ops.ledger.incident(incident_id)["report"]  # type: ignore[index]
    assert f"{incident_id} (cache, redis_memory_pressure) is resolved" in resolved["text"]
    assert report["outcome_detail"] in resolved["text"] and f"MTTR {report['mttr_s']} s" in resolved["text"]
    assert "redis_scale_memory ok" in resolved["text"]

    trigger, acknowledge, resolve = pagerduty.accepted()
    assert [b["event_action"] for b in (trigger, acknowledge, resolve)] == ["trigger", "acknowledge", "resolve"]
    assert {b["dedup_key"] for b in (trigger, acknowledge, resolve)} == {incident_id}
    assert {b["routing_key"] for b in (trigger, acknowledge, resolve)} == {ROUTING_KEY}
    payload = trigger["payload"]
    assert payload["severity"] == "warning" and payload["source"] == "cache" and payload["component"] == "cache"
    assert incident_id in payload["summary"] and len(payload["summary"]) <= 1024
    assert payload["custom_details"]["incident_id"] == incident_id
    assert f"API: POST {PUBLIC}/api/approvals/{incident_id}" in payload["custom_details"]["answer_with"]
    assert {link["href"] for link in trigger["links"]} == {CHAT, f"{PUBLIC}/api/incidents/{incident_id}"}
    assert set(acknowledge) == set(resolve) == {"routing_key", "event_action", "dedup_key"}
    assert all(r.path == "/v2/enqueue" for r in pagerduty.requests)

    recorded = rows(ops.ledger, incident_id)
    assert set(recorded) == {
        ("opened", "slack"), ("awaiting_approval:1", "slack"), ("resolved", "slack"),
        ("awaiting_approval:1", "pagerduty"), ("answered:1", "pagerduty"), ("resolved", "pagerduty"),
    }  # fmt: skip
    assert {(row["status"], row["attempts"], row["error"]) for row in recorded.values()} == {("sent", 1, None)}


def test_an_unattended_fix_tells_slack_and_pages_nobody(stack: Stack, slack: Receiver, pagerduty: Receiver) -> None:
    ops = Operations(stack.context(approval="none"))
    with Notifier(ops.ledger, settings_for(slack, pagerduty), Said()) as notifier:
        incident_id = ops.new_incident_id("cache")
        assert ops.start_fix("cache", incident_id).values["outcome"] == "resolved"
        assert sweep_and_drain(notifier) == {("opened", "slack"), ("resolved", "slack")}
    opened, resolved = slack.accepted()  # in the order they happened
    assert "opened" in opened["text"] and "is resolved" in resolved["text"]
    assert pagerduty.requests == []
    assert set(rows(ops.ledger, incident_id)) == {("opened", "slack"), ("resolved", "slack")}


def test_a_second_wait_after_a_revised_plan_is_announced_and_paged_again(
    stack: Stack, slack: Receiver, pagerduty: Receiver
) -> None:
    ops = Operations(stack.context(approval="risky"))
    with Notifier(ops.ledger, settings_for(slack, pagerduty), Said()) as notifier:
        incident_id = ops.new_incident_id("cache")
        ops.start_fix("cache", incident_id)
        sweep_and_drain(notifier)
        assert approve(ops, incident_id, "revise", change="only 128 MB").get("outcome") is None  # asked again
        # The wait right after an answer is trusted once the answer is settle_s (0.2 s) old.
        queued: set[tuple[str, str]] = set()

        def second_wait_told() -> bool:
            queued.update(sweep_and_drain(notifier))
            return ("awaiting_approval:2", "slack") in queued

        wait_for(second_wait_told, "the second wait", timeout_s=10)
        assert queued == {
            ("answered:1", "pagerduty"),
            ("awaiting_approval:2", "slack"),
            ("awaiting_approval:2", "pagerduty"),
        }
        assert approve(ops, incident_id)["outcome"] == "resolved"
        sweep_and_drain(notifier)
    assert [b["event_action"] for b in pagerduty.accepted()] == [
        "trigger", "acknowledge", "trigger", "acknowledge", "resolve",
    ]  # fmt: skip
    texts = [body["text"] for body in slack.accepted()]
    assert len(texts) == 4 and "(approval request 2)" in texts[2] and "is resolved" in texts[3]


def test_an_escalation_pages_and_a_rejection_resolves_the_page(
    stack: Stack, slack: Receiver, pagerduty: Receiver
) -> None:
    flush = ScriptedReasoner([{"tool": "redis_flush", "args": {"resource": "cache"}}])  # policy: max disruptive
    flush.name = "runbook"  # whose refusal is final: the incident escalates
    refused = Operations(stack.context(approval="none", reasoner=flush))
    ops = Operations(stack.context(approval="risky"))
    with Notifier(ops.ledger, settings_for(slack, pagerduty), Said()) as notifier:
        escalated = refused.new_incident_id("cache")
        assert refused.start_fix("cache", escalated).values["outcome"] == "escalated"
        assert sweep_and_drain(notifier) == {("opened", "slack"), ("escalated", "slack"), ("escalated", "pagerduty")}

        rejected = ops.new_incident_id("cache")
        ops.start_fix("cache", rejected)
        sweep_and_drain(notifier)
        assert approve(ops, rejected, "reject")["outcome"] == "rejected"
        assert sweep_and_drain(notifier) == {("closed", "slack"), ("closed", "pagerduty")}  # no ack: it runs not on

    page, wait_page, resolve = pagerduty.accepted()
    assert (page["event_action"], page["dedup_key"], page["payload"]["severity"]) == ("trigger", escalated, "error")
    assert "policy refused the plan" in " ".join(page["payload"]["custom_details"]["outcome"])
    assert (wait_page["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert wait_page["dedup_key"] == resolve["dedup_key"] == rejected
    texts = [body["text"] for body in slack.accepted()]
    assert f"{escalated} (cache, redis_memory_pressure) is escalated (escalated): a human must act" in texts[1]
    assert "policy refused the plan" in texts[1]
    assert f"{rejected} (cache, redis_memory_pressure) is closed as rejected" in texts[-1]
    assert "alice rejected the plan" in texts[-1]


@pytest.mark.parametrize("status", [503, 429])
def test_a_receiver_failing_twice_is_sent_on_the_third_attempt_and_an_unreachable_one_never_acks(
    stack: Stack, slack: Receiver, status: int
) -> None:
    slack.fail_first(2, status)
    unreachable = f"http://127.0.0.1:{free_port()}/v2/enqueue"  # nothing listens: connection refused
    ops = Operations(stack.context(approval="risky"))
    said = Said()
    with Notifier(ops.ledger, settings_for(slack, unreachable), said) as notifier:
        incident_id = ops.new_incident_id("cache")
        ops.start_fix("cache", incident_id)
        sweep_and_drain(notifier)
        recorded = rows(ops.ledger, incident_id)
        assert (recorded["opened", "slack"]["status"], recorded["opened", "slack"]["attempts"]) == ("sent", 3)
        assert recorded["opened", "slack"]["error"] is None
        page = recorded["awaiting_approval:1", "pagerduty"]
        assert (page["status"], page["attempts"]) == ("failed", 3) and "ConnectError" in page["error"]
        assert [r.status for r in slack.requests] == [
            status,
            status,
            200,
            200,
        ]  # opened three times, then the wait once

        assert approve(ops, incident_id)["outcome"] == "resolved"
        assert sweep_and_drain(notifier) == {("resolved", "slack")}  # a page never raised is neither acked nor resolved
    assert said.at("warning") == [
        f"{incident_id}: notifying pagerduty of awaiting_approval:1 failed after 3 attempt(s): {page['error']}"
    ]


def test_a_receiver_that_always_fails_is_recorded_failed_and_the_incident_still_resolves(
    stack: Stack, slack: Receiver
) -> None:
    slack.fail_always(500)
    slack.delay_s = 0.3  # slow as well: each try holds a delivery thread, never the graph
    ops = Operations(stack.context(approval="none"))
    said = Said()
    notifier = Notifier(ops.ledger, settings_for(slack), said)
    stop = threading.Event()
    thread = threading.Thread(target=notifier.run, args=(stop,))
    thread.start()
    try:
        incident_id = ops.new_incident_id("cache")
        assert ops.start_fix("cache", incident_id).values["outcome"] == "resolved"

        def both_failed() -> bool:
            recorded = rows(ops.ledger, incident_id)
            return len(recorded) == 2 and all(row["status"] == "failed" for row in recorded.values())

        wait_for(both_failed, "both deliveries to fail", timeout_s=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    recorded = rows(ops.ledger, incident_id)
    for event in ("opened", "resolved"):
        row = recorded[event, "slack"]
        assert (row["status"], row["attempts"]) == ("failed", 3)  # attempts = the maximum
        assert row["error"] == "HTTP 500 from slack: Slack stand-in is failing on purpose"
    assert len(slack.requests) == 6
    assert ops.ledger.incident(incident_id)["status"] == "resolved"  # type: ignore[index]
    failures = said.at("warning")
    assert len(failures) == 2 and all("failed after 3 attempt(s): HTTP 500" in text for text in failures)  # once each


def test_a_slow_receiver_delays_no_other_delivery(stack: Stack, slack: Receiver, pagerduty: Receiver) -> None:
    slack.delay_s = 1.5
    ops = Operations(stack.context(approval="risky"))
    with Notifier(ops.ledger, settings_for(slack, pagerduty), Said()) as notifier:
        incident_id = ops.new_incident_id("cache")
        ops.start_fix("cache", incident_id)
        started = time.monotonic()
        assert len(notifier.sweep()) == 3
        assert time.monotonic() - started < 1.0  # the sweep only queues
        wait_for(lambda: pagerduty.accepted(), "the page", timeout_s=1.5)
        assert rows(ops.ledger, incident_id)["opened", "slack"]["status"] == "sending"  # Slack still dawdles
        assert notifier.drain(30)
    assert {row["status"] for row in ops.ledger.notifications(incident_id)} == {"sent"}


def test_a_restarted_notifier_sends_nothing_twice(stack: Stack, slack: Receiver, pagerduty: Receiver) -> None:
    ops = Operations(stack.context(approval="risky"))
    settings = settings_for(slack, pagerduty)
    incident_id = ops.new_incident_id("cache")
    with Notifier(ops.ledger, settings, Said()) as first:
        ops.start_fix("cache", incident_id)
        assert len(sweep_and_drain(first)) == 3
    assert approve(ops, incident_id)["outcome"] == "resolved"
    # A notifier killed while it sent `resolved` to Slack left its row at `sending`: it may have arrived.
    ops.ledger.record_notification(incident_id, "resolved", "slack", "sending", 1, None)

    said = Said()
    with Notifier(ops.ledger, settings, said) as second:
        assert sweep_and_drain(second) == {("answered:1", "pagerduty"), ("resolved", "pagerduty")}
    interrupted = rows(ops.ledger, incident_id)["resolved", "slack"]
    assert interrupted["status"] == "failed" and interrupted["error"].startswith("interrupted")
    assert len(said.at("warning")) == 1

    with Notifier(ops.ledger, settings, Said()) as third:
        assert third.sweep() == []
    assert len(slack.requests) == 2  # opened, awaiting_approval:1; `resolved` not sent again
    assert [b["event_action"] for b in pagerduty.accepted()] == ["trigger", "acknowledge", "resolve"]


def test_two_notifiers_on_one_ledger_send_each_event_once(stack: Stack, slack: Receiver) -> None:
    """Both sweep the same due events at once; the ledger's claim lets one of them send each."""
    ops = Operations(stack.context(approval="none"))
    incident_id = ops.new_incident_id("cache")
    assert ops.start_fix("cache", incident_id).values["outcome"] == "resolved"
    with (
        Notifier(ops.ledger, settings_for(slack), Said()) as one,
        Notifier(ops.ledger, settings_for(slack), Said()) as two,
    ):
        start = threading.Barrier(2)

        def sweep(notifier: Notifier) -> None:
            start.wait()
            notifier.sweep()

        threads = [threading.Thread(target=sweep, args=(n,)) for n in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert one.drain(30) and two.drain(30)
    assert len(slack.accepted()) == 2  # opened and resolved, once each
    assert {key: row["status"] for key, row in rows(ops.ledger, incident_id).items()} == {
        ("opened", "slack"): "sent",
        ("resolved", "slack"): "sent",
    }


def test_incidents_before_the_first_start_stay_silent_and_those_while_it_was_down_are_told(
    stack: Stack, slack: Receiver
) -> None:
    ops = Operations(stack.context(approval="none"))
    settings = settings_for(slack, grace_s=0.3)

    def fix() -> str:
        refill(stack)
        incident_id = ops.new_incident_id("cache")
        assert ops.start_fix("cache", incident_id).values["outcome"] == "resolved"
        return incident_id

    before = fix()  # no notifier has ever run on this ledger
    time.sleep(0.5)  # older than the grace
    with Notifier(ops.ledger, settings, Said()) as first:
        assert first.sweep() == []
        during = fix()
        assert sweep_and_drain(first) == {("opened", "slack"), ("resolved", "slack")}
    while_down = fix()
    time.sleep(0.5)
    with Notifier(ops.ledger, settings, Said()) as second:  # its epoch: the first notification on this ledger
        queued = second.sweep()
        assert second.drain(30)
    assert {(d.incident_id, d.event) for d in queued} == {(while_down, "opened"), (while_down, "resolved")}
    assert ops.ledger.notifications(before) == []
    told = [next(i for i in (before, during, while_down) if i in body["text"]) for body in slack.accepted()]
    assert told == [during, during, while_down, while_down]


def test_no_secret_reaches_the_ledger_the_say_lines_or_the_logs(
    stack: Stack, slack: Receiver, pagerduty: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fail_always(404, echo=True)  # quoting the path, which holds the token
    pagerduty.fail_always(400, echo=True)  # quoting the body, which holds the routing key
    caplog.set_level(logging.DEBUG)
    settings = settings_for(slack, pagerduty)
    ops = Operations(stack.context(approval="risky"))
    said = Said()
    with Notifier(ops.ledger, settings, said) as notifier:
        incident_id = ops.new_incident_id("cache")
        ops.start_fix("cache", incident_id)
        sweep_and_drain(notifier)
    recorded = rows(ops.ledger, incident_id)
    for key in (("opened", "slack"), ("awaiting_approval:1", "slack"), ("awaiting_approval:1", "pagerduty")):
        row = recorded[key]
        assert row["status"] == "failed" and row["attempts"] == 1, key  # a 4xx other than 429 is not retried
        assert row["error"].startswith(("HTTP 404 from slack: rejected ", "HTTP 400 from pagerduty: rejected "))
        assert "[REDACTED]" in row["error"]
    # The secrets were really there to leak: the stand-ins got them.
    assert SLACK_TOKEN in slack.requests[0].path and pagerduty.requests[0].json()["routing_key"] == ROUTING_KEY
    assert ROUTING_KEY in pagerduty.requests[0].body.decode() and SLACK_TOKEN in slack.requests[0].path
    webhook = settings.slack_webhook_url.get_secret_value()  # type: ignore[union-attr]
    outputs = {
        "ledger": json.dumps(ops.ledger.notifications()),
        "say": json.dumps(said.lines),
        "logs": caplog.text,
        "settings": repr(settings),
    }
    for where, text in outputs.items():
        for secret in (SLACK_TOKEN, ROUTING_KEY, webhook):
            assert secret not in text, f"a secret in the {where}"
    assert len(said.at("warning")) == 3


def test_with_no_channel_it_does_nothing_and_says_so_once(tmp_path: Path) -> None:
    said = Said()
    notifier = Notifier(Ledger(tmp_path / "ledger.sqlite"), NotifySettings(**FAST), said)
    stop = threading.Event()
    notifier.run(stop)  # returns at once, stop not set
    assert notifier.sweep() == [] and notifier.channels == []
    assert [text for _, text, _ in said.lines] == [
        "notifications: no channel configured (OPSGRAPH_SLACK_WEBHOOK_URL, OPSGRAPH_PAGERDUTY_ROUTING_KEY); "
        "none are sent"
    ]


def test_settings_come_from_opsgraph_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_SLACK_WEBHOOK_URL", f"https://hooks.slack.example/services/T/B/{SLACK_TOKEN}")
    monkeypatch.setenv("OPSGRAPH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("OPSGRAPH_PUBLIC_URL", PUBLIC)
    settings = NotifySettings.from_settings(load_settings(), attempts=2)
    assert settings.pagerduty_url == "https://events.pagerduty.com/v2/enqueue" and settings.attempts == 2
    assert settings.public_url == PUBLIC and settings.poll_s == 1.0 and settings.backoff_s == 1.0
    assert SLACK_TOKEN not in repr(settings) and ROUTING_KEY not in repr(settings)


def test_a_wait_right_after_an_answer_is_trusted_only_once_the_answer_has_settled() -> None:
    """An answer writes its approval rows just before the status leaves awaiting_approval: a read in
    between sees one answer more and the old status, which must not announce a wait that is not there."""
    row = {"incident_id": "inc-1", "status": "awaiting_approval", "opened_at": 100.0, "closed_at": None}
    answers = answers_of([{"plan_no": 1, "decision": "revise", "decided_by": "bob", "decided_at": 110.0}])
    names = [e.name for e in incident_events(row, answers, read_at=110.05, settle_s=0.2)]
    assert names == ["opened", "answered:1"]  # maybe mid-answer: not yet
    later = incident_events(row, answers, read_at=110.5, settle_s=0.2)
    assert [e.name for e in later] == ["opened", "answered:1", "awaiting_approval:2"]
    assert later[-1].at == 110.0  # the wait began after the answer
    first = incident_events(row, [], read_at=100.01, settle_s=0.2)
    assert [e.name for e in first] == ["opened", "awaiting_approval:1"]  # no answer yet: nothing to settle
