"""The incident graph: nodes and edges, nothing else.

detector → diagnostician → planner → approval → executor → verifier → report, with
conditional hops expressed by the nodes themselves (`Command(goto=...)`): detector may
end early, approval may go straight to report or back to the planner (an operator's
change), verifier may loop back.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from opsgraph.graph.context import Context
from opsgraph.graph.nodes.approval import approval
from opsgraph.graph.nodes.detector import detector
from opsgraph.graph.nodes.diagnostician import diagnostician
from opsgraph.graph.nodes.executor import executor
from opsgraph.graph.nodes.planner import planner
from opsgraph.graph.nodes.reporter import reporter
from opsgraph.graph.nodes.verifier import verifier
from opsgraph.graph.state import IncidentInput, IncidentState


def build_graph() -> StateGraph[IncidentState, Context, IncidentInput, IncidentState]:
    builder = StateGraph(IncidentState, context_schema=Context, input_schema=IncidentInput)
    builder.add_node("detector", detector)
    builder.add_node("diagnostician", diagnostician)
    builder.add_node("planner", planner)
    builder.add_node("approval", approval)
    builder.add_node("executor", executor)
    builder.add_node("verifier", verifier)
    builder.add_node("report", reporter)
    builder.add_edge(START, "detector")
    builder.add_edge("diagnostician", "planner")
    builder.add_edge("planner", "approval")
    builder.add_edge("executor", "verifier")
    builder.add_edge("report", END)
    return builder
