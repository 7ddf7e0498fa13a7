"""Container tests against a private Docker Engine (a package: its conftest must not clash with others for mypy)."""
