"""The incident graph's nodes, one module per node: detector, diagnostician, planner,
approval, executor, verifier, report. Each is a typed function of the state and the
runtime context; the reasoning they call lives in `opsgraph.agents`."""
