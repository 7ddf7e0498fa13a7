"""`python -m opsgraph` runs the CLI (same as the `opsgraph` command)."""

from opsgraph.graph.cli import run

run()
