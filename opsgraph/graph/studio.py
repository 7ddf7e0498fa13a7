"""The graph as LangGraph Studio / `langgraph dev` load it (see langgraph.json).

Compiled without a checkpointer: the LangGraph server supplies its own.
"""

from opsgraph.graph.wiring import build_graph

graph = build_graph().compile(name="opsgraph")
