"""One module per graph node, the reasoning interface and its embedded runbook backend."""
