"""The Chainlit chat for operators (arrives with its own issue; the graph's interrupt payload is its contract)."""
