"""The one error type of an expected tool failure, shared by tools and the environments they drive.

Kept in a module of its own so that environments (which raise it, e.g. a Docker engine
that refuses) and the tool specification (which documents it) need not import each other.
"""

from __future__ import annotations


class ToolError(RuntimeError):
    """An expected failure of a tool (bad target state, refused change): reported as data."""
