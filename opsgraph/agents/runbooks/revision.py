"""An operator's change to a plan, applied by rule: how the runbook backend revises a plan.

At an approval an operator may answer with a change instead of yes or no ("use
redis_memory_purge instead", "only 128 MB"). A model reads such a change as feedback;
the rule-based backend understands three phrasings and edits the plan the operator saw:

- `use TOOL instead` (or `use TOOL instead of OLD`): every step (or every OLD step) becomes
  one TOOL step, with the arguments of the old steps that TOOL's argument model accepts;
- `only N MB` (also `N MB`, `NMB`, `N GB`): the plan's one size argument becomes N — a `*_mb`
  argument in MB, a `*_gb` one (a Memorystore size) in whole GB;
- `skip TOOL` (also drop, remove, without, don't run): the TOOL steps go.

It edits, it never judges: whether 10 MB is too little or 4096 MB too much is for the
policy engine and the tool's own checks, which see the revised plan as they see any plan.
A change it cannot apply leaves the steps as they were, and the summary says so plainly,
with the phrasings it understands, so that the operator can say it again in those words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from opsgraph.agents.records import Plan, PlanRevision, PlanStep
from opsgraph.tools.spec import ToolSpec

UNDERSTOOD = "'use TOOL instead' (or 'use TOOL instead of TOOL'), 'only N MB' (or 'N GB') and 'skip TOOL'"

_WORD = r"([a-z][a-z0-9_]*)"
_SKIP = re.compile(
    r"\b(?:skip|drop|remove|omit|without|no|(?:don'?t|do\s+not)(?:\s+(?:run|use|do))?)\s+(?:the\s+)?" + _WORD
)
_USE = re.compile(r"\buse\s+(?:the\s+)?" + _WORD)
_BARE_INSTEAD = re.compile(_WORD + r"\s+instead\b")
_INSTEAD_OF = re.compile(r"\binstead\s+of\s+(?:the\s+)?" + _WORD)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(mib|mb|m|gib|gb|g)\b")
_SHOWN_CHARS = 200  # of the change, quoted in the summary


class _CannotApply(Exception):
    """The change does not fit the plan; the message says why."""


class _NotUnderstood(_CannotApply):
    """The words are none of the phrasings, or name what is not there."""


@dataclass
class _Change:
    """What was read from the operator's words."""

    skip: list[str] = field(default_factory=list)
    use: str | None = None
    instead_of: list[str] = field(default_factory=list)
    size_mb: int | None = None
    problems: list[str] = field(default_factory=list)  # words that looked like a request but were not one

    @property
    def empty(self) -> bool:
        return not self.skip and self.use is None and self.size_mb is None


def revise(plan: Plan, asked: PlanRevision, resource: str, tools: Mapping[str, ToolSpec[Any]]) -> Plan:
    """`plan` with the operator's change (`asked`) applied to its steps, or its steps unchanged with why.

    `tools` are the catalogue tools the change may name (those that can act on `resource`).
    The result keeps the plan's backend and provenance and carries `asked` as its `revision`,
    with a note that says what was done; unchanged, it keeps the summary too (the note says
    why), so that asking again and again never nests one explanation in another.
    """
    shown = _quoted(asked.change)
    parsed = _parse(asked.change, tools)
    try:
        if parsed.problems:
            raise _NotUnderstood("; ".join(dict.fromkeys(parsed.problems)))
        if parsed.empty:
            raise _NotUnderstood("")
        steps, notes = _apply(parsed, list(plan.steps), resource, tools)
        if not steps:
            raise _CannotApply("it would leave no step to run; to run nothing, reject the plan")
    except _CannotApply as why:
        names = ", ".join(sorted(tools)) or "none"
        failed = "did not understand" if isinstance(why, _NotUnderstood) else "could not apply"
        reason = f": {why}" if str(why) else ""
        note = (
            f"the rule-based backend {failed} the change {shown}{reason}. It understands {UNDERSTOOD}, "
            f"with TOOL one of: {names}. Plan {asked.of_plan} stands unchanged"
        )
        return plan.model_copy(update={"revision": asked.model_copy(update={"unchanged": True, "note": note})})
    note = "; ".join(notes)
    if [step.digest() for step in steps] == [step.digest() for step in plan.steps]:
        note = f"the change {shown} leaves the steps as they were ({note}). Plan {asked.of_plan} stands unchanged"
        return plan.model_copy(update={"revision": asked.model_copy(update={"unchanged": True, "note": note})})
    summary = f"revised at the request of {asked.by} ({shown}): {note}"
    revision = asked.model_copy(update={"unchanged": False, "note": f"the rule-based backend applied it: {note}"})
    return plan.model_copy(update={"steps": steps, "summary": summary, "revision": revision})


def _quoted(change: str) -> str:
    text = " ".join(change.split())
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…")


def _parse(change: str, tools: Mapping[str, ToolSpec[Any]]) -> _Change:
    """Read the three phrasings; each match is blanked out so that "don't use X" is not also "use X"."""
    text = " ".join(change.lower().split())
    parsed = _Change()

    def blank(match: re.Match[str]) -> None:
        nonlocal text
        text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]

    def tool_named(word: str) -> str | None:
        if word in tools:
            return word
        if "_" in word:  # looks like a tool name, is not one here
            parsed.problems.append(f"{word} is not a tool for this resource")
        return None

    for match in list(_SKIP.finditer(text)):
        if (name := tool_named(match.group(1))) is not None:
            parsed.skip.append(name)
            blank(match)
    if (instead := _INSTEAD_OF.search(text)) is not None and (name := tool_named(instead.group(1))) is not None:
        parsed.instead_of.append(name)
        blank(instead)
    for match in [*_USE.finditer(text), *_BARE_INSTEAD.finditer(text)]:
        if parsed.use is None and (name := tool_named(match.group(1))) is not None:
            parsed.use = name
            blank(match)
    for word in dict.fromkeys(re.findall(_WORD, text)):  # a tool named outside every phrasing: do not half-apply
        if word in tools:
            parsed.problems.append(f"it names {word} outside 'use {word} instead' or 'skip {word}'")
    if parsed.use is None and parsed.instead_of:
        parsed.problems.append(f"instead of {parsed.instead_of[0]}, use which tool?")
    if parsed.use is not None and parsed.skip:  # "don't run X, use Y": Y instead of X
        parsed.instead_of += parsed.skip
        parsed.skip = []
    sizes = {_megabytes(m.group(1), m.group(2)) for m in _SIZE.finditer(text)}
    if len(sizes) > 1:
        parsed.problems.append("it names more than one size")
    elif sizes:
        size = sizes.pop()
        if size is None:
            parsed.problems.append("a size must be a whole number of MB")
        else:
            parsed.size_mb = size
    return parsed


def _megabytes(number: str, unit: str) -> int | None:
    value = float(number) * (1024 if unit.startswith("g") else 1)
    return int(value) if value.is_integer() else None


def _apply(
    change: _Change, steps: list[PlanStep], resource: str, tools: Mapping[str, ToolSpec[Any]]
) -> tuple[list[PlanStep], list[str]]:
    notes: list[str] = []
    for name in change.skip:
        if not any(step.tool == name for step in steps):
            raise _NotUnderstood(f"the plan has no {name} step to skip")
        steps = [step for step in steps if step.tool != name]
        notes.append(f"dropped {name}")
    if change.use is not None:
        steps, note = _replace(steps, change.use, change.instead_of, change.size_mb, resource, tools[change.use])
        notes.append(note)
    if change.size_mb is not None:
        steps, note = _resize(steps, change.size_mb, tools)
        notes.append(note)
    return _distinct(steps), notes


_MB_PER_UNIT = {"_mb": 1, "_gb": 1024}


def _size_fields(spec: ToolSpec[Any]) -> dict[str, int]:
    """The integer size arguments and the MB in one of their units (`maxmemory_mb`: 1, `memory_size_gb`: 1024)."""
    return {
        name: per
        for name, info in spec.args_model.model_fields.items()
        for suffix, per in _MB_PER_UNIT.items()
        if name.endswith(suffix) and (info.annotation is int or int in get_args(info.annotation))
    }


def _in_units(arg: str, size_mb: int, per: int) -> int:
    """The operator's size in the argument's unit; a size that is not whole in it is not rounded."""
    if size_mb % per:
        raise _CannotApply(f"{arg} takes whole GB, and {size_mb} MB is not")
    return size_mb // per


def _replace(
    steps: list[PlanStep],
    name: str,
    instead_of: list[str],
    size_mb: int | None,
    resource: str,
    spec: ToolSpec[Any],
) -> tuple[list[PlanStep], str]:
    if missing := [tool for tool in instead_of if all(step.tool != tool for step in steps)]:
        raise _NotUnderstood(f"the plan has no {', '.join(missing)} step to replace")
    old = [step for step in steps if not instead_of or step.tool in instead_of]
    args: dict[str, Any] = {"resource": resource}
    for arg, info in spec.args_model.model_fields.items():
        given = next((step.args[arg] for step in old if arg in step.args and arg != "resource"), None)
        if given is not None:
            args[arg] = given
        elif arg in _size_fields(spec) and size_mb is not None:
            args[arg] = _in_units(arg, size_mb, _size_fields(spec)[arg])  # set (again) by the size part of the change
        elif info.is_required() and arg != "resource":
            raise _CannotApply(f"{name} needs {arg}, which the plan does not give and the rules do not choose")
    replaced = sorted({step.tool for step in old})
    step = PlanStep(
        tool=name,
        args=args,
        rationale=f"the operator asked for {name} instead of {', '.join(replaced)}",
        expected_effect=f"what {name} does: {spec.description}",
        undo=spec.undo,
    )
    at = steps.index(old[0])
    kept = [s for s in steps if s not in old]
    return [*kept[:at], step, *kept[at:]], f"{name} instead of {', '.join(replaced)}"


def _resize(steps: list[PlanStep], size_mb: int, tools: Mapping[str, ToolSpec[Any]]) -> tuple[list[PlanStep], str]:
    sized = [(i, arg) for i, step in enumerate(steps) if step.tool in tools for arg in _size_fields(tools[step.tool])]
    if not sized:
        raise _CannotApply(f"no step of the plan takes a size in MB for {size_mb} MB")
    if len(sized) > 1:
        which = ", ".join(f"{steps[i].tool}.{arg}" for i, arg in sized)
        raise _CannotApply(f"more than one argument takes a size in MB ({which}): say which step with 'use TOOL'")
    [(index, arg)] = sized
    step = steps[index]
    before = step.args.get(arg)
    size = _in_units(arg, size_mb, _size_fields(tools[step.tool])[arg])
    resized = step.model_copy(
        update={
            "args": {**step.args, arg: size},
            "rationale": f"the operator asked for {arg}={size} (the plan had {before}); {step.rationale}",
            "expected_effect": f"{step.tool} with {arg}={size}; the plan's estimate was for {before}: "
            f"{step.expected_effect}",
        }
    )
    return [*steps[:index], resized, *steps[index + 1 :]], f"{step.tool} {arg} {before} → {size}"


def _distinct(steps: list[PlanStep]) -> list[PlanStep]:
    """The same call twice is one step (e.g. TOOL instead of OLD, when the plan already ran TOOL)."""
    seen: set[str] = set()
    kept = []
    for step in steps:
        if step.digest() not in seen:
            seen.add(step.digest())
            kept.append(step)
    return kept
