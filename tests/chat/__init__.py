"""The operator chat's tests (a package: its conftest must not clash with the others for mypy)."""
