"""HTTP routes: the shop itself, operations (health, metrics) and failure injection."""
