"""`python -m opsgraph` runs the CLI (same as the `opsgraph` command)."""

from opsgraph.cli import run

run()
