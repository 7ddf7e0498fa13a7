"""The operator chat: a Chainlit app on the graph, checkpoints, ledger and settings of the CLI.

`opsgraph chat` (or `chainlit run opsgraph/chat/app.py`) serves it. Each conversation:
- opens with the health of the inventory, the open incidents and every approval waiting —
  whichever process paused it (`watch`, the CLI, another chat, Studio);
- follows the ledger while it is open, so a new incident or a new approval request from any
  process appears without a reload;
- answers plain words through the command router (rule-based, and says so) or, with a model
  configured, the conversational agent, which reads but never acts;
- shows each graph node's progress as a step, and a waiting plan with Approve / Reject buttons.
  Typing at a waiting plan asks about it (it stays pending) or changes it (the planner
  revises it, the policy reviews it, and it is asked again under its new digests).

Safety is not here: an answer carries the logged-in operator's name, and the approval node
judges it — roles, digests, expiry — exactly as it judges one from the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import chainlit as cl
from chainlit.types import ThreadDict
from langchain_core.language_models import BaseChatModel

from opsgraph.agents.models import ModelConfigError, build_chat_model, model_spec_from_env
from opsgraph.chat import agent, auth, history, render
from opsgraph.chat.router import Intent, IntentKind, help_text, route
from opsgraph.chat.service import AnswerRefused, ChatService, Pending
from opsgraph.graph.fixing import summary
from opsgraph.graph.runtime import RunResult
from opsgraph.settings import load_settings

log = logging.getLogger(__name__)
_settings = load_settings()
auth.install(_settings)  # login when CHAINLIT_AUTH_SECRET is set; a half-configured login stops the server here
history.install(_settings)  # conversations in <home>/chat.sqlite, or OPSGRAPH_CHAT_DATABASE_URL
FOLLOW_INTERVAL_S = 1.0  # how often an open conversation looks for news in the ledger
ANONYMOUS = "chat-anonymous"  # who answers when login is off: no role, so refused once OPSGRAPH_ROLES is set


class _Session:
    """What one open conversation knows: its service, what it has shown, which runs it drives."""

    def __init__(self) -> None:
        self.service = ChatService.from_settings()
        self.started_at = time.time()
        self.shown_plans: dict[str, list[str]] = {}  # incident id -> the digests whose buttons are shown
        self.buttons: dict[str, list[cl.Action]] = {}
        self.known_incidents: set[str] = set()
        self.driving: set[str] = set()  # incidents whose graph this conversation is running right now
        # Showing a plan (drop the old buttons, send, remember the new ones) is one step: the follower
        # and a run's end must not interleave in it, or two sets of buttons stay on the page.
        self.showing = asyncio.Lock()
        self.resource_refs = [(r.name, r.kind) for r in self.service.resources]
        self.history: list[tuple[str, str]] = []  # (user|assistant, text) for the conversational agent
        self._model: BaseChatModel | None = None

    def model(self) -> BaseChatModel | None:
        """The configured chat model (built once per conversation), or None: the router answers."""
        if self._model is None and (spec := model_spec_from_env()) is not None:
            try:
                self._model = build_chat_model(spec)
            except ModelConfigError as error:  # said in the log; the router answers meanwhile
                log.warning("the chat model cannot be built: %s", error)
        return self._model

    def remember(self, question: str, reply: str) -> None:
        self.history += [("user", question), ("assistant", reply)]
        del self.history[: -agent.HISTORY_ENTRIES]

    @staticmethod
    def current() -> _Session:
        session = cl.user_session.get("opsgraph")
        if not isinstance(session, _Session):
            raise RuntimeError("the conversation has no OpsGraph session: was on_chat_start run?")
        return session


def _operator() -> str:
    user = cl.user_session.get("user")
    return str(user.identifier) if user is not None else ANONYMOUS


async def _say(content: str, actions: list[cl.Action] | None = None) -> cl.Message:
    message = cl.Message(content=content, actions=actions or [])
    await message.send()
    return message


# ---- runs with live progress


async def _run_with_steps(work: Callable[[Callable[[str, dict[str, Any]], None]], RunResult]) -> RunResult:
    """Run a graph in a worker thread; each node's update appears as a `cl.Step` as soon as it is done."""
    loop = asyncio.get_running_loop()
    updates: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()

    def on_node(node: str, update: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(updates.put_nowait, (node, update))

    async def run() -> RunResult:
        try:
            return await asyncio.to_thread(work, on_node)
        finally:
            updates.put_nowait(None)

    task = asyncio.create_task(run())
    while (item := await updates.get()) is not None:
        node, update = item
        async with cl.Step(name=node, type="tool") as step:
            step.output = render.node_step(node, update)
    try:
        return await task
    except AnswerRefused:  # another operator was first: said as such by the caller, no traceback
        raise
    except Exception as error:  # the operator sees why in the conversation, not a dead spinner
        log.exception("an incident run from the chat failed")
        raise RunFailed(f"the incident run failed: {type(error).__name__}: {error}") from error


class RunFailed(RuntimeError):
    """A graph run started from the chat raised; what it left is in its checkpoint (`opsgraph incidents repair`)."""


async def _show_result(session: _Session, result: RunResult) -> None:
    """The run's end in the conversation: the resolution, or the plan now waiting."""
    if result.pending is not None:
        await _show_plan(session, Pending(result.incident_id, result.pending))
        return
    await _say(render.outcome(summary(result)))


async def _fix(session: _Session, resource: str) -> None:
    try:
        incident_id = session.service.new_incident_id(resource)
    except KeyError as unknown:
        await _say(f"✖ {unknown.args[0]}")
        return
    session.known_incidents.add(incident_id)
    session.driving.add(incident_id)
    try:
        await _say(f"Opening `{incident_id}` on **{resource}**: detect → diagnose → plan → (approve) → fix → verify.")
        result = await _run_with_steps(lambda on_node: session.service.start_fix(resource, incident_id, on_node))
        await _show_result(session, result)
    except RunFailed as failed:
        await _say(f"✖ {failed}")
    finally:
        session.driving.discard(incident_id)


# ---- approvals


async def _show_plan(session: _Session, pending: Pending, only_if_new: bool = False) -> None:
    """The plan with its buttons, replacing any shown for the incident; `only_if_new` (the follower):
    not when this conversation drives the incident or already shows exactly these steps."""
    async with session.showing:
        if only_if_new and (
            pending.incident_id in session.driving or session.shown_plans.get(pending.incident_id) == pending.digests
        ):
            return
        await _remove_buttons(session, pending.incident_id)
        await _send_plan(session, pending)


async def _send_plan(session: _Session, pending: Pending) -> None:
    payload = {"incident_id": pending.incident_id, "digests": pending.digests}
    buttons = [
        cl.Action(name="approve", payload=payload, label="Approve", icon="check"),
        cl.Action(name="reject", payload=payload, label="Reject", icon="x"),
    ]
    await _say(render.plan(pending), buttons)
    session.shown_plans[pending.incident_id] = pending.digests
    session.buttons[pending.incident_id] = buttons
    session.known_incidents.add(pending.incident_id)


async def _drop_buttons(session: _Session, incident_id: str) -> None:
    async with session.showing:
        await _remove_buttons(session, incident_id)


async def _remove_buttons(session: _Session, incident_id: str) -> None:
    for button in session.buttons.pop(incident_id, []):
        await button.remove()
    session.shown_plans.pop(incident_id, None)


async def _answer(session: _Session, incident_id: str, digests: list[str] | None, answer: dict[str, Any]) -> None:
    """Give the operator's answer to the plan they saw; a plan that changed meanwhile is not answered."""
    pending = await asyncio.to_thread(session.service.pending_for, incident_id)
    if pending is None:
        await _drop_buttons(session, incident_id)
        record = await asyncio.to_thread(session.service.ledger.incident, incident_id)
        status = record["status"] if record else "unknown incident"
        await _say(f"`{incident_id}` is not waiting for an approval any more ({status}): nothing was applied.")
        return
    if digests is not None and sorted(digests) != sorted(pending.digests):
        await _say(f"The plan of `{incident_id}` changed since you saw it: nothing was applied. Here it is now.")
        await _show_plan(session, pending)
        return
    await _drop_buttons(session, incident_id)
    answer = {**answer, "by": _operator(), "digests": pending.digests}
    session.driving.add(incident_id)  # until its result is shown: the follower must not show it meanwhile
    try:
        try:
            result = await _run_with_steps(lambda on_node: session.service.answer(pending, answer, on_node))
        except (AnswerRefused, RunFailed) as refused:
            await _say(f"✖ {refused}")
            return
        if result.pending is not None and _refused(result.pending):
            await _say(f"✖ The answer was refused: {result.pending['error']}")
        await _show_result(session, result)
    finally:
        session.driving.discard(incident_id)


def _refused(request: dict[str, Any]) -> bool:
    """The graph judged the answer and refused it (roles, digests, expiry) — not a change it could not apply."""
    if not request.get("error"):
        return False
    revision = request.get("revision")
    return not (revision and revision.get("unchanged") and request["error"] == revision.get("note"))


@cl.action_callback("approve")
async def on_approve(action: cl.Action) -> None:
    session = _Session.current()
    await _answer(session, action.payload["incident_id"], action.payload["digests"], {"decision": "approve"})


@cl.action_callback("reject")
async def on_reject(action: cl.Action) -> None:
    session = _Session.current()
    await _answer(session, action.payload["incident_id"], action.payload["digests"], {"decision": "reject"})


# ---- following the ledger


async def _follow(session: _Session) -> None:
    """Announce what other processes do while the conversation is open: new incidents, new or answered plans."""
    while True:
        await asyncio.sleep(FOLLOW_INTERVAL_S)
        try:
            await _catch_up(session)
        except Exception:  # a locked ledger or a vanished server must not end the following
            log.exception("following the ledger failed; trying again in %s s", FOLLOW_INTERVAL_S)


async def _catch_up(session: _Session) -> None:
    """One look at the ledger and the checkpoints: say what is new since the last look."""
    rows = await asyncio.to_thread(session.service.incidents, 20)
    for row in reversed(rows):
        if row["opened_at"] >= session.started_at and row["incident_id"] not in session.known_incidents:
            session.known_incidents.add(row["incident_id"])
            await _say(f"● New incident `{row['incident_id']}` on **{row['resource']}**: {row['symptom']}.")
    waiting = {p.incident_id: p for p in await asyncio.to_thread(session.service.pending)}
    for incident_id, pending in waiting.items():
        if incident_id not in session.driving and session.shown_plans.get(incident_id) != pending.digests:
            await _show_plan(session, pending, only_if_new=True)
    for incident_id in list(session.shown_plans):
        if incident_id not in waiting and incident_id not in session.driving:
            await _drop_buttons(session, incident_id)
            record = await asyncio.to_thread(session.service.ledger.incident, incident_id)
            status = record["status"] if record else "unknown"
            await _say(f"`{incident_id}` was answered elsewhere; it is now **{status}**.")


# ---- the conversation


async def _greet(session: _Session) -> None:
    snapshots = await asyncio.to_thread(session.service.health)
    open_rows = await asyncio.to_thread(session.service.open_incidents)
    pending = await asyncio.to_thread(session.service.pending)
    session.known_incidents.update(
        row["incident_id"] for row in await asyncio.to_thread(session.service.incidents, 200)
    )
    await _say(render.summary(snapshots, open_rows, pending))
    for request in pending:
        await _show_plan(session, request)
    cl.user_session.set("follower", asyncio.create_task(_follow(session)))


@cl.on_chat_start
async def on_chat_start() -> None:
    session = _Session()
    cl.user_session.set("opsgraph", session)
    await _greet(session)


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    """A conversation reopened from the history: its messages are back; show what waits now."""
    await on_chat_start()


@cl.on_chat_end
async def on_chat_end() -> None:
    follower = cl.user_session.get("follower")
    if isinstance(follower, asyncio.Task):
        follower.cancel()


async def _status(session: _Session) -> None:
    snapshots = await asyncio.to_thread(session.service.health)
    open_rows = await asyncio.to_thread(session.service.open_incidents)
    pending = await asyncio.to_thread(session.service.pending)
    await _say(render.summary(snapshots, open_rows, pending))


async def _why(session: _Session, pending: list[Pending]) -> None:
    """Why the agent wants what it plans: the diagnosis and each step's rationale; the plan stays pending."""
    if not pending:
        record = await asyncio.to_thread(session.service.last_incident)
        await _say(render.incident(record) if record else "No incident yet, so no plan to explain.")
        return
    for request in pending:
        diagnosis = await asyncio.to_thread(session.service.diagnosis, request.incident_id)
        await _say(render.why(request, diagnosis))


async def _only_pending(pending: list[Pending]) -> Pending | None:
    if len(pending) == 1:
        return pending[0]
    await _say(f"{len(pending)} plans are waiting: use the buttons under the one you mean.")
    return None


async def _decide(session: _Session, intent: Intent, pending: list[Pending]) -> None:
    """A typed answer to the one waiting plan: approve, reject, or a change for the planner."""
    target = await _only_pending(pending)
    if target is None:
        return
    if intent.kind is IntentKind.CHANGE:
        await _say(f"Sending your change back to the planner: *{intent.text}*")
        answer: dict[str, Any] = {"decision": "revise", "change": intent.text}
    else:
        answer = {"decision": "approve" if intent.kind is IntentKind.APPROVE else "reject"}
    await _answer(session, target.incident_id, None, answer)


async def _routed(session: _Session, intent: Intent, pending: list[Pending]) -> None:
    """The rule-based answer to an intent (no model configured, or the model failed)."""
    service = session.service
    kind = intent.kind
    if kind is IntentKind.STATUS:
        await _status(session)
    elif kind is IntentKind.SCAN:
        await _say(render.health(await asyncio.to_thread(service.health)))
    elif kind is IntentKind.FIX and intent.resource is not None:
        await _fix(session, intent.resource)
    elif kind in (IntentKind.WHY, IntentKind.QUESTION):
        await _why(session, pending)
    elif kind is IntentKind.SHOW_LAST:
        record = await asyncio.to_thread(service.last_incident)
        await _say(render.incident(record) if record else "No incident yet.")
    elif kind is IntentKind.SHOW and intent.incident_id is not None:
        record = await asyncio.to_thread(service.incident, intent.incident_id)
        await _say(render.incident(record) if record else f"No incident `{intent.incident_id}` in the ledger.")
    elif kind is IntentKind.HISTORY and intent.since is not None and intent.until is not None:
        rows = await asyncio.to_thread(service.actions_between, intent.since, intent.until)
        await _say(render.actions(rows, intent.since, intent.until))
    else:  # CLARIFY, HELP, UNKNOWN: the router's own words, which say that it is rule-based
        await _say(intent.message or help_text(session.resource_refs))


async def _conversed(session: _Session, text: str, model: BaseChatModel) -> bool:
    """The conversational agent's answer (it reads; a fix it asks for runs as an incident graph).

    False when the model failed: the caller answers with the router instead.
    """
    reply = await asyncio.to_thread(agent.answer, text, model, session.service.agent_tools(), session.history)
    if reply.error is not None:
        log.warning("the chat model failed (%s); the router answers", reply.error)
        await _say(f"_{reply.text}_")
        return False
    session.remember(text, reply.text)
    if reply.tool_calls:
        async with cl.Step(name="read by the assistant", type="tool") as step:
            step.output = "\n".join(f"- {call}" for call in reply.tool_calls)
    await _say(reply.text)
    for resource in reply.fixes_requested:
        await _fix(session, resource)
    return True


async def _respond(session: _Session, text: str) -> None:
    pending = await asyncio.to_thread(session.service.pending)
    intent = route(text, session.resource_refs, bool(pending))
    if intent.kind in (IntentKind.APPROVE, IntentKind.REJECT, IntentKind.CHANGE):
        await _decide(session, intent, pending)  # a decision is never left to a model's reading of it
        return
    model = session.model()
    if model is not None and await _conversed(session, text, model):
        return
    await _routed(session, intent, pending)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    await _respond(_Session.current(), message.content)
