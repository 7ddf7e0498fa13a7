"""`ModelReasoner`: a chat model investigates with read-only tools, diagnoses and plans.

It composes the parts, each in its own module: `tools` (what the model may read:
the catalogue's read tools and extra MCP servers'), `loop` (the bounded
tool-calling conversation), `budget` (tokens and deadline), `render` and `scrub`
(what the model sees, framed and redacted). The model's answers are parsed into the
same `Diagnosis` / `Plan` records the runbook backend returns — and whatever goes
wrong (an error, a timeout, an overrun budget, a malformed reply) the fallback
backend answers instead, with the reason in `fallback`. The model never runs a
mutating tool: it can only read, and its plan goes to the policy engine like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from opsgraph.agents.llm import prompts
from opsgraph.agents.llm.budget import ModelFailure, Usage
from opsgraph.agents.llm.loop import ToolLoop
from opsgraph.agents.llm.render import incident_text, plan_text
from opsgraph.agents.llm.scrub import Scrubber
from opsgraph.agents.llm.structured import one_line
from opsgraph.agents.llm.tools import catalogue_tools, extra_tools
from opsgraph.agents.models import model_name
from opsgraph.agents.reasoning import ReadTool, Reasoner
from opsgraph.agents.records import Diagnosis, Hypothesis, Incident, Plan, PlanStep
from opsgraph.agents.runbooks import RunbookReasoner
from opsgraph.tools.catalogue import CATALOGUE
from opsgraph.tools.inventory import Inventory, Resource
from opsgraph.tools.snapshot import Snapshot

log = logging.getLogger(__name__)


class FinalDiagnosis(BaseModel):
    """Your final diagnosis of the incident."""

    root_cause: str = Field(description="The most likely root cause, one sentence")
    evidence: list[str] = Field(description="Short facts, with numbers, that support the root cause")
    hypotheses: list[Hypothesis] = Field(default_factory=list, description="Ranked, most likely first")
    confidence: Annotated[float, Field(ge=0, le=1)]


class ProposedStep(BaseModel):
    tool: str = Field(description="A catalogue tool listed for this resource")
    args: dict[str, Any] = Field(description="Arguments matching the tool's schema, including `resource`")
    rationale: str
    expected_effect: str


class FinalPlan(BaseModel):
    """Your plan to fix the incident."""

    summary: str = Field(description="One sentence: what the plan does")
    steps: list[ProposedStep] = Field(description="In order; empty means escalate to a human")


class ModelReasoner:
    """A `Reasoner` backed by any LangChain chat model that can call tools."""

    def __init__(
        self,
        model: BaseChatModel,
        *,
        max_tool_steps: int = 6,
        token_budget: int = 6000,
        deadline_s: float = 120.0,
        mcp_timeout_s: float = 30.0,
        fallback: Reasoner | None = None,
        inventory: Inventory | None = None,
        secrets: Iterable[str] = (),
        name: str | None = None,
    ) -> None:
        self.token_budget = token_budget
        self.deadline_s = deadline_s
        self.mcp_timeout_s = mcp_timeout_s
        self.fallback: Reasoner = fallback if fallback is not None else RunbookReasoner()
        self._inventory = inventory
        self._scrubber = Scrubber(inventory, secrets)
        self._loop = ToolLoop(model, max_tool_steps, self._scrubber.clean)
        self.name = name or model_name(model)
        # Incidents whose diagnosis read tool output (while this object lives).
        self._read_output: set[str] = set()

    def diagnose(self, incident: Incident, snapshot: Snapshot, read: ReadTool, feedback: str | None) -> Diagnosis:
        usage = Usage(self.token_budget, self.deadline_s)
        tools, notes = self._tools(incident.resource, incident.kind, read)
        messages: list[BaseMessage] = [
            SystemMessage(prompts.DIAGNOSE_SYSTEM),
            HumanMessage(self._scrubber.clean(_with_notes(incident_text(incident, snapshot, feedback), notes))),
        ]
        try:
            draft, reads = self._loop.converse(messages, tools, FinalDiagnosis, prompts.DIAGNOSE_FINAL, usage)
        except Exception as error:  # noqa: BLE001 — any failure of the model path is recorded, the fallback answers
            reason = self._fell_back("diagnosis", error)
            answer = self.fallback.diagnose(incident, snapshot, read, feedback)
            update = {"fallback": reason, "tokens": usage.tokens(), "evidence": [*answer.evidence, *notes]}
            return answer.model_copy(update=update)
        if reads:
            self._read_output.add(incident.incident_id)
        return Diagnosis(
            root_cause=draft.root_cause,
            symptom=incident.symptom,
            evidence=[*draft.evidence, *notes],
            hypotheses=sorted(draft.hypotheses, key=lambda h: h.likelihood, reverse=True),
            confidence=draft.confidence,
            severity=incident.severity,
            backend=self.name,
            tokens=usage.tokens(),
        )

    def plan(
        self, incident: Incident, diagnosis: Diagnosis, resource: Resource, read: ReadTool, feedback: str | None
    ) -> Plan:
        usage = Usage(self.token_budget, self.deadline_s)
        known = self.fallback.plan(incident, diagnosis, resource, read, feedback)
        tools, notes = self._tools(resource.name, resource.kind, read, resource)
        request = _with_notes(plan_text(incident, diagnosis, resource, known, feedback), notes)
        messages: list[BaseMessage] = [SystemMessage(prompts.PLAN_SYSTEM), HumanMessage(self._scrubber.clean(request))]
        try:
            draft, reads = self._loop.converse(messages, tools, FinalPlan, prompts.PLAN_FINAL, usage)
        except Exception as error:  # noqa: BLE001 — any failure of the model path is recorded, the fallback answers
            reason = self._fell_back("plan", error)
            return known.model_copy(update={"fallback": reason, "tokens": usage.tokens()})
        informed = (
            reads > 0
            or incident.incident_id in self._read_output
            or diagnosis.backend != self.fallback.name  # written by a model that read tool output
            or bool(diagnosis.evidence)  # evidence quotes tool output, which now sits in this prompt
        )
        steps = [
            PlanStep(
                tool=step.tool,
                args=step.args,
                rationale=step.rationale,
                expected_effect=step.expected_effect,
                undo=spec.undo if (spec := CATALOGUE.get(step.tool)) is not None else None,
            )
            for step in draft.steps
        ]
        return Plan(
            steps=steps,
            summary=draft.summary,
            backend=self.name,
            tokens=usage.tokens(),
            informed_by_untrusted_text=informed,
        )

    def _fell_back(self, what: str, error: Exception) -> str:
        """The reason recorded as `fallback`, logged as ONE warning line (the traceback only at debug level)."""
        reason = _reason(error)
        log.warning("model %s %s failed (%s); using %s", self.name, what, reason, self.fallback.name)
        log.debug("model %s %s failure", self.name, what, exc_info=error)
        return reason

    def _tools(
        self, resource_name: str, kind: str, read: ReadTool, resource: Resource | None = None
    ) -> tuple[list[StructuredTool], list[str]]:
        """The catalogue's read tools for the resource plus the inventory's extra MCP servers' tools."""
        tools = catalogue_tools(resource_name, kind, read, self._scrubber, self._inventory, resource)
        servers = self._inventory.mcp_servers if self._inventory is not None else []
        extra, notes = extra_tools(servers, self._scrubber, self.mcp_timeout_s)
        return [*tools, *extra], notes


def _with_notes(text: str, notes: list[str]) -> str:
    """The request, plus which evidence sources could not be reached (so the model does not wait for them)."""
    if not notes:
        return text
    return text + "\n\nNot available this time:\n" + "\n".join(f"- {note}" for note in notes)


def _reason(error: BaseException) -> str:
    """The fallback reason: one line (a server's error may quote a whole validation report), at most 500 chars."""
    if isinstance(error, ModelFailure):
        return one_line(str(error))[:500]
    if isinstance(error, TimeoutError):
        return f"model timed out: {one_line(str(error))}" if str(error) else "model timed out"
    return one_line(f"model error: {type(error).__name__}: {error}")[:500]
