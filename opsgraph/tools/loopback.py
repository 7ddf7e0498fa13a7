"""Whether an address names this machine only: the test for binds that must not be reachable from elsewhere.

Kept apart from the MCP server and the chat that both ask it, so that asking costs no import of theirs.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (`localhost`, 127.0.0.0/8, ::1); any other name counts as remote."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
