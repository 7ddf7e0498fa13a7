"""Who may answer an approval request, and for how long a request stands.

Plain rules without I/O. The approval node applies them to every answer, whichever
entry point carried it (CLI, chat, Studio, the SDK), so no client can skip them; they
read the settings (`OPSGRAPH_ROLES`, `OPSGRAPH_APPROVAL_TTL_S`), never the run's
Context, because a LangGraph server takes the Context from whoever starts the run and
the caller must not be able to hand itself a role.
"""

from __future__ import annotations

from enum import StrEnum

from opsgraph.tools.risk import Risk


class Role(StrEnum):
    """What a person may decide: viewers look, operators run disruptive steps, admins destructive ones too."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


# The riskiest step each role may approve (None: nothing).
_APPROVES_UP_TO: dict[Role, Risk | None] = {
    Role.VIEWER: None,
    Role.OPERATOR: Risk.DISRUPTIVE,
    Role.ADMIN: Risk.DESTRUCTIVE,
}
# Saying no runs nothing, but it closes the incident; asking for another plan (revise) runs
# nothing either, but it steers what will be proposed next: a viewer may do neither.
_MAY_STEER = (Role.OPERATOR, Role.ADMIN)
_STEERING = {"reject": "reject this plan", "revise": "revise this plan"}
# How many times one incident's plan may be sent back to the planner with a change: enough for
# a conversation, few enough that a client stuck in a loop cannot keep the planner busy forever.
MAX_REVISIONS = 5

Roles = dict[str, Role]


class RolesError(ValueError):
    """`OPSGRAPH_ROLES` does not parse; the message names the entry."""


def parse_roles(text: str | None) -> Roles | None:
    """`alice=admin,bob=operator` as a mapping; None (unset) means everyone may decide, as before roles existed."""
    if text is None or not text.strip():
        return None
    roles: Roles = {}
    for entry in text.split(","):
        name, sep, role = (part.strip() for part in entry.partition("="))
        if not sep or not name or role not in Role.__members__.values():
            example = "alice=admin,bob=operator"
            raise RolesError(
                f"OPSGRAPH_ROLES entry {entry.strip()!r} is not name=viewer|operator|admin (e.g. {example})"
            )
        if name in roles:
            raise RolesError(f"OPSGRAPH_ROLES names {name!r} twice")
        roles[name] = Role(role)
    return roles


def _may(role: Role, decision: str, risk: Risk) -> bool:
    if decision in _STEERING:
        return role in _MAY_STEER
    ceiling = _APPROVES_UP_TO[role]
    return ceiling is not None and not risk.exceeds(ceiling)


def refusal(roles: Roles | None, by: str, decision: str, risk: Risk) -> str | None:
    """Why `by` may not give this decision on steps up to `risk`, naming who may; None when allowed."""
    if roles is None:
        return None
    role = roles.get(by)
    if role is not None and _may(role, decision, risk):
        return None
    who = ", ".join(f"{name} ({r})" for name, r in sorted(roles.items()) if _may(r, decision, risk)) or "nobody"
    what = _STEERING.get(decision, f"approve a {risk} step")
    as_whom = f"{by} is {role}" if role is not None else f"{by} has no role in OPSGRAPH_ROLES"
    return f"{as_whom} and may not {what}; who may: {who}"


def revisions_spent(revisions: int) -> str | None:
    """Why this incident's plan may not be revised again after `revisions` revisions; None while it may."""
    if revisions < MAX_REVISIONS:
        return None
    return (
        f"this incident's plan was already revised {revisions} times (at most {MAX_REVISIONS}): "
        "approve or reject the plan as it stands"
    )


def expired(asked_at: float, answered_at: float, ttl_s: float) -> bool:
    """An approval given more than `ttl_s` after the request was made approves a state that may be gone."""
    return answered_at - asked_at > ttl_s
