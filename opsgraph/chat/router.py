"""The rule-based command router: what an operator's words ask for, when no language model is configured.

`route(text, resources, pending)` maps a chat message to an `Intent` with plain word
tables, no model: the chat stays usable offline, and it says so (`RULE_BASED`). The
text is lower-cased, apostrophes dropped ("what's" → "whats") and split into words, so
case, punctuation and extra words do not matter; phrases are matched as whole words.
The only regular expressions (incident ids, amounts, time spans) have no nested
repetition, and the text is cut to `MAX_TEXT` characters first.

Resources are named by their inventory name or by a kind alias ("the db" → the one
postgres resource). The router never guesses: an alias that fits several resources, or
none, gives a `CLARIFY` intent that lists the names.

While a plan waits for approval (`pending`), a bare yes/no is a decision, a question
("why …?", "what does it do?") is answered and keeps the plan pending, and words that
alter the plan ("use redis_memory_purge instead", "only 128 MB", "don't restart") are a
`CHANGE`, with what could be read from them (`tool`, `memory_mb`, `avoid`) and the
operator's own words (`text`) as feedback for the planner.

Time windows (HISTORY) are computed from `now` in the local time zone (or `tz`):
"last night" is yesterday 18:00 to today 08:00; "yesterday" is yesterday 00:00 to
today 00:00; "today" is today 00:00 to now; "this morning" today 00:00 to 12:00;
"this week" Monday 00:00 to now; "last/past N minutes/hours/days/weeks" is that span
up to now; anything else ("what did you do?") is the last 24 hours.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as clock
from enum import StrEnum
from typing import NamedTuple

from opsgraph.tools.catalogue import CATALOGUE

RULE_BASED = "rule-based replies: no language model is configured"

# Longer messages are cut before matching: nothing an operator types needs more.
MAX_TEXT = 1000


class ResourceRef(NamedTuple):
    """An inventory resource as the router knows it: its name and kind (`Resource.kind`, e.g. "redis")."""

    name: str
    kind: str


class IntentKind(StrEnum):
    STATUS = "status"  # health of the inventory (or `resource`) and the open incidents
    WHY = "why"  # explain the pending plan / a diagnosis (`resource`, `tool`, `incident_id` if named)
    QUESTION = "question"  # another question about the pending plan (only while pending)
    SHOW_LAST = "show_last"  # the newest incident
    SHOW = "show"  # the incident `incident_id`
    SCAN = "scan"  # probe now (every resource, or `resource`)
    FIX = "fix"  # run an incident graph on `resource` (always resolved to one name)
    HISTORY = "history"  # what OpsGraph did between `since` and `until` (`resource` if named)
    APPROVE = "approve"  # approve the pending plan (only while pending)
    REJECT = "reject"  # reject the pending plan (only while pending)
    CHANGE = "change"  # alter the pending plan: `text` is the feedback, plus `tool`, `memory_mb`, `avoid`
    CLARIFY = "clarify"  # `wanted` needs a resource the words did not pin down: `candidates`, `message`
    HELP = "help"  # what the router understands (`message`)
    UNKNOWN = "unknown"  # not understood (`message` says what is)


@dataclass(frozen=True)
class Intent:
    """What one message asks for; the fields a kind does not use stay at their defaults."""

    kind: IntentKind
    text: str = ""  # the operator's words, stripped (a CHANGE's feedback for the planner)
    resource: str | None = None  # an inventory name, resolved without guessing
    incident_id: str | None = None  # SHOW (and WHY when one is named)
    since: float | None = None  # HISTORY: epoch seconds
    until: float | None = None
    window: str = ""  # HISTORY: the window in words, e.g. "last night (yesterday 18:00 to today 08:00)"
    tool: str | None = None  # a catalogue tool named (CHANGE: the one to use; WHY/QUESTION: the one asked about)
    memory_mb: int | None = None  # CHANGE: an amount named ("only 128 MB" → 128; "1 GB" → 1024)
    avoid: tuple[str, ...] = ()  # CHANGE: tools or actions to leave out ("don't restart" → ("restart",))
    wanted: IntentKind | None = None  # CLARIFY: what was asked for
    candidates: tuple[str, ...] = ()  # CLARIFY: the resource names to choose from
    message: str = ""  # CLARIFY / HELP / UNKNOWN: what to tell the operator


# --- word tables -----------------------------------------------------------------------------

_HELP = ("help", "help me", "what can you do", "what do you understand", "commands", "usage", "menu", "options")
_WHY = ("why", "explain", "reason", "reasons", "rationale", "how come", "justify", "what for")
_SHOW_LAST = (
    "last incident", "latest incident", "most recent incident", "newest incident", "previous incident",
    "recent incident", "show incident", "show the incident", "show the latest", "show latest", "last one",
)  # fmt: skip
_FIX = ("fix", "repair", "heal", "remediate", "resolve", "mitigate", "sort out", "recover", "deal with")
_SCAN = ("scan", "rescan", "re-scan", "probe", "check", "check now", "refresh", "look again", "detect")
_STATUS = (
    "status", "health", "healthy", "unhealthy", "wrong", "broken", "failing", "problem", "problems", "issues",
    "overview", "summary", "down", "ok", "okay", "fine", "working", "alive", "running",
    "everything ok", "everything okay", "everything fine", "all good", "all ok",
    "is it ok", "incidents", "open incidents", "how are things", "hows everything", "how is everything",
)  # fmt: skip
_HISTORY = (
    "what did you do", "what have you done", "what did you", "what happened", "what has happened", "what went",
    "did you", "have you", "history", "actions", "activity", "timeline", "audit", "done",
)  # fmt: skip
_APPROVE = (
    "approve", "approved", "approve it", "yes", "y", "yep", "yeah", "yup", "sure", "ok", "okay", "go", "go ahead",
    "do it", "proceed", "confirm", "confirmed", "lgtm", "ship it", "run it", "apply", "apply it", "accept", "execute",
)  # fmt: skip
_REJECT = (
    "reject", "rejected", "no", "n", "nope", "nah", "cancel", "abort", "stop", "deny", "denied", "decline",
    "refuse", "dont", "dont do it", "do not", "do not do it", "no way", "hold off", "not now", "never",
)  # fmt: skip
# Words a yes/no may carry without changing it: "yes please", "ok, thanks", "reject the plan".
_FILLER = frozenset((
    "please", "pls", "the", "plan", "it", "this", "that", "thanks", "thank", "you", "then", "now", "and",
))  # fmt: skip
# Wording that alters a pending plan (besides a catalogue tool name or an amount of memory).
_CHANGE = (
    "instead", "only", "rather", "dont", "do not", "skip", "without", "avoid", "no need", "use", "try", "change",
    "switch", "replace", "set", "make it", "less", "smaller", "bigger", "lower", "higher", "increase",
    "decrease", "reduce", "raise", "limit", "cap", "but", "except", "leave out", "what about", "how about", "lets",
    "prefer",
)  # fmt: skip
# Questions that are really requests ("could you use 128 MB instead?").
_REQUEST_STARTS = ("can you", "could you", "would you", "will you", "can we", "could we", "what about", "how about")
_QUESTION_STARTS = frozenset((
    "why", "what", "whats", "how", "hows", "which", "who", "when", "where", "explain", "tell",
))  # fmt: skip
# A question about the plan itself is a QUESTION even if it says "wrong" or "broken".
_PLAN_WORDS = ("plan", "step", "steps", "it", "this", "that", "tool")
# Words that start a history question rather than an order ("what did you fix?").
_NOT_ORDERS = frozenset(("what", "whats", "when", "who", "which", "where", "did", "have", "has"))
# After these, the next word names what to leave out of the plan.
_NEGATORS = frozenset(("dont", "not", "skip", "without", "avoid", "no", "never", "except"))
_SKIPPED_BEFORE_TARGET = frozenset(("the", "a", "an", "any", "to", "do", "doing", "use", "using", "of", "than"))
# "no" negates only the word right after it ("no flush"); "no, use X" does not leave X out.
_NEGATES_NEXT_ONLY = frozenset(("no",))
_ACTIONS = frozenset((
    "restart", "flush", "purge", "scale", "kill", "reload", "vacuum", "terminate", "clear", "update", "evict",
    "delete", "resize",
))  # fmt: skip

# Kind aliases: the words that mean "the resource of this kind". Inventory names win over them.
_KIND_ALIASES: dict[str, tuple[str, ...]] = {
    "postgres": ("db", "dbs", "database", "databases", "postgres", "postgresql", "pg", "psql", "sql"),
    "redis": ("cache", "caches", "redis", "memorystore"),
    "nginx": ("proxy", "nginx", "edge", "reverse proxy", "load balancer", "lb", "web server", "webserver", "gateway"),
    "http": ("app", "apps", "api", "shop", "service", "site", "website", "backend", "application"),
    "container": ("container", "containers", "docker"),
    "process": ("process", "processes", "daemon"),
}

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "couple": 2, "few": 3,
}  # fmt: skip
_UNIT_SECONDS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

# Ids as the detector makes them (`inc-YYYYMMDD-HHMMSS-<resource>-<6 hex>`), and any id typed
# after the word "incident" that holds a digit (a Studio thread id).
_INCIDENT_ID = re.compile(r"\binc-\d{8}-\d{6}-[a-z0-9][a-z0-9_-]{0,62}-[0-9a-f]{6}\b", re.I)
_NAMED_ID = re.compile(r"\bincident\s+([a-z0-9][a-z0-9_.:-]{3,80})", re.I)
_MEMORY = re.compile(r"\b(\d{1,7}(?:\.\d{1,3})?) ?(mib|mb|megabytes?|m|gib|gb|gigabytes?|g)\b")
_SPAN = re.compile(
    r"\b(?:last|past|previous) (?:(?P<n>\d{1,4}|[a-z]+) ?(?:of )?)?"
    r"(?P<unit>minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\b"
)
_WORD = re.compile(r"[a-z0-9][a-z0-9_.-]*")


# --- the parsed message ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Said:
    raw: str
    words: tuple[str, ...]
    resources: tuple[ResourceRef, ...]
    now: float
    tz: tzinfo | None

    @property
    def norm(self) -> str:
        return " ".join(self.words)

    def has(self, phrases: Iterable[str]) -> bool:
        padded = f" {self.norm} "
        return any(f" {phrase} " in padded for phrase in phrases)

    def starts(self, phrases: Iterable[str]) -> bool:
        padded = f"{self.norm} "
        return any(padded.startswith(f"{phrase} ") for phrase in phrases)

    @property
    def first(self) -> str:
        return self.words[0] if self.words else ""

    def is_question(self) -> bool:
        asked = self.raw.endswith("?") or self.first in _QUESTION_STARTS
        return asked and not self.starts(_REQUEST_STARTS)


def _said(text: str, resources: Sequence[tuple[str, str]], now: float | None, tz: tzinfo | None) -> _Said:
    raw = text.strip()[:MAX_TEXT]
    lowered = raw.lower().replace("\u2019", "'").replace("'", "")
    words = tuple(w.rstrip(".-") for w in _WORD.findall(lowered))
    refs = tuple(ResourceRef(str(name), str(kind)) for name, kind in resources)
    return _Said(raw, tuple(w for w in words if w), refs, time.time() if now is None else now, tz)


# --- resources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Match:
    """The resources the words point at, and why, for a clarifying question."""

    names: tuple[str, ...]
    reason: str  # empty when the words named nothing


def _resolve(said: _Said) -> _Match:
    named = tuple(r.name for r in said.resources if said.has((r.name, r.name.replace("-", " ").replace("_", " "))))
    if named:
        return _Match(named, "you named several resources")
    kinds = [kind for kind, aliases in _KIND_ALIASES.items() if said.has(aliases)]
    if not kinds:
        return _Match((), "")
    fitting = tuple(r.name for r in said.resources if r.kind in kinds)
    if not fitting:
        return _Match((), f"the inventory has no {' or '.join(kinds)} resource")
    return _Match(fitting, f"several resources are {' or '.join(kinds)}")


def _optional_resource(said: _Said) -> str | None:
    """The one resource the words point at, or None (an optional field is never guessed)."""
    match = _resolve(said)
    return match.names[0] if len(match.names) == 1 else None


def _listing(resources: Sequence[ResourceRef]) -> str:
    return ", ".join(f"{r.name} ({r.kind})" for r in resources) or "none (the inventory is empty)"


# --- intents ------------------------------------------------------------------------------------


def _fix(said: _Said) -> Intent:
    match = _resolve(said)
    if len(match.names) == 1:
        return Intent(IntentKind.FIX, text=said.raw, resource=match.names[0])
    if not match.reason and len(said.resources) == 1:  # "fix it" with one resource in the inventory
        return Intent(IntentKind.FIX, text=said.raw, resource=said.resources[0].name)
    candidates = match.names or tuple(r.name for r in said.resources)
    shown = [r for r in said.resources if r.name in candidates]
    why = f"{match.reason}. " if match.reason else ""
    message = f"Which resource should I fix? {why}Name one of: {_listing(shown)}."
    return Intent(IntentKind.CLARIFY, text=said.raw, wanted=IntentKind.FIX, candidates=candidates, message=message)


def _incident_id(said: _Said) -> str | None:
    if found := _INCIDENT_ID.search(said.raw):
        return found.group(0)
    named = _NAMED_ID.search(said.raw)
    if named and any(ch.isdigit() for ch in named.group(1)):
        return named.group(1).rstrip(".:-")
    return None


def _tool_named(said: _Said, avoided: Iterable[str] = ()) -> str | None:
    skip = set(avoided)
    return next((w for w in said.words if w in CATALOGUE and w not in skip), None)


def _why(said: _Said) -> Intent:
    return Intent(
        IntentKind.WHY,
        text=said.raw,
        resource=_optional_resource(said),
        tool=_tool_named(said),
        incident_id=_incident_id(said),
    )


def _show(said: _Said) -> Intent:
    return Intent(IntentKind.SHOW, text=said.raw, incident_id=_incident_id(said))


def _question(said: _Said) -> Intent:
    return Intent(IntentKind.QUESTION, text=said.raw, resource=_optional_resource(said), tool=_tool_named(said))


def _stem(word: str) -> str | None:
    """An action word or a catalogue tool name in any common form ("flushing" → "flush"), else None."""
    if word in CATALOGUE or word in _ACTIONS:
        return word
    for cut, add in ((3, ""), (3, "e"), (2, ""), (2, "e"), (1, "")):  # -ing, -ed, -es, -s
        if len(word) > cut + 2 and (stem := word[:-cut] + add) in _ACTIONS:
            return stem
    return None


def _avoided(said: _Said) -> tuple[str, ...]:
    found: list[str] = []
    words = said.words
    for index, word in enumerate(words):
        negating = word in _NEGATORS or (word == "instead" and words[index + 1 : index + 2] == ("of",))
        negating = negating or (word == "rather" and words[index + 1 : index + 2] == ("than",))
        if not negating:
            continue
        if word in _NEGATES_NEXT_ONLY:
            following = list(words[index + 1 : index + 2])
        else:
            following = [w for w in words[index + 1 : index + 4] if w not in _SKIPPED_BEFORE_TARGET | _FILLER]
        if following and (target := _stem(following[0])) is not None and target not in found:
            found.append(target)
    return tuple(found)


def _memory_mb(said: _Said) -> int | None:
    found = _MEMORY.search(said.norm)
    if found is None:
        return None
    amount = float(found.group(1)) * (1024 if found.group(2).startswith("g") else 1)
    return round(amount) if amount >= 1 else None


def _change(said: _Said) -> Intent:
    avoid = _avoided(said)
    return Intent(
        IntentKind.CHANGE,
        text=said.raw,
        resource=_optional_resource(said),
        tool=_tool_named(said, avoided=avoid),
        memory_mb=_memory_mb(said),
        avoid=avoid,
    )


def _asks_change(said: _Said) -> bool:
    return said.has(_CHANGE) or _memory_mb(said) is not None or _tool_named(said) is not None or bool(_avoided(said))


def _decision(said: _Said) -> IntentKind | None:
    """APPROVE or REJECT when the whole message is a yes or a no (fillers aside), else None."""
    phrases = {**{p: IntentKind.APPROVE for p in _APPROVE}, **{p: IntentKind.REJECT for p in _REJECT}}
    seen: set[IntentKind] = set()
    words, index = said.words, 0
    while index < len(words):
        for size in (4, 3, 2, 1):
            if (kind := phrases.get(" ".join(words[index : index + size]))) is not None:
                seen.add(kind)
                index += size
                break
        else:
            if words[index] not in _FILLER:
                return None
            index += 1
    return seen.pop() if len(seen) == 1 else None


# --- time windows -------------------------------------------------------------------------------


def _window(said: _Said) -> tuple[float, float, str] | None:
    """The time window the words name, or None if they name none."""
    now, tz = said.now, said.tz
    today = datetime.fromtimestamp(now, tz).date()
    yesterday = today - timedelta(days=1)

    def at(day: date, hour: int) -> float:
        # A naive datetime (tz None) is local time: `timestamp()` applies the local offset, DST included.
        return datetime.combine(day, clock(hour), tzinfo=tz).timestamp()

    if said.has(("last night", "overnight", "during the night")):
        return at(yesterday, 18), at(today, 8), "last night (yesterday 18:00 to today 08:00)"
    if said.has(("since yesterday",)):
        return at(yesterday, 0), now, "since yesterday 00:00"
    if said.has(("yesterday",)):
        return at(yesterday, 0), at(today, 0), "yesterday"
    if said.has(("this morning",)):
        return at(today, 0), at(today, 12), "this morning (00:00 to 12:00)"
    if said.has(("today", "so far")):
        return at(today, 0), now, "today"
    if said.has(("this week",)):
        return at(today - timedelta(days=today.weekday()), 0), now, "this week (since Monday 00:00)"
    if (span := _SPAN.search(said.norm)) is not None:
        count_word = span.group("n")
        count = 1 if count_word is None else int(count_word) if count_word.isdigit() else _NUMBER_WORDS.get(count_word)
        if count is not None and count > 0:
            unit = span.group("unit")
            seconds = _UNIT_SECONDS["m" if unit.startswith("mi") or unit == "m" else unit[0]]
            return now - count * seconds, now, f"the last {count} {_unit_name(unit, count)}"
    return None


def _unit_name(unit: str, count: int) -> str:
    name = {"m": "minute", "h": "hour", "d": "day", "w": "week"}["m" if unit.startswith("mi") else unit[0]]
    return name if count == 1 else f"{name}s"


def _history(said: _Said) -> Intent:
    since, until, label = _window(said) or (said.now - 86400.0, said.now, "the last 24 hours")
    resource = _optional_resource(said)
    return Intent(IntentKind.HISTORY, text=said.raw, since=since, until=until, window=label, resource=resource)


def _asks_history(said: _Said) -> bool:
    if said.has(_HISTORY):
        return True
    return _window(said) is not None and not said.has(_STATUS)


def _asks_why(said: _Said) -> bool:
    return said.first == "why" or said.has(_WHY)


def _asks_fix(said: _Said) -> bool:
    return said.has(_FIX) and said.first not in _NOT_ORDERS


# --- the table ----------------------------------------------------------------------------------


class _Rule(NamedTuple):
    matches: Callable[[_Said], bool]
    intent: Callable[[_Said], Intent]


def _simple(kind: IntentKind, with_resource: bool = True) -> Callable[[_Said], Intent]:
    def build(said: _Said) -> Intent:
        return Intent(kind, text=said.raw, resource=_optional_resource(said) if with_resource else None)

    return build


# First match wins, so the more specific asks come first ("why … the db" is WHY, not STATUS;
# "show the last incident" is SHOW_LAST, not HISTORY; "what did you fix" is HISTORY, not FIX).
_RULES: tuple[_Rule, ...] = (
    _Rule(lambda s: s.norm in _HELP or (s.first == "help" and len(s.words) <= 3), lambda s: _help(s)),
    _Rule(_asks_why, _why),
    _Rule(lambda s: _incident_id(s) is not None, lambda s: _show(s)),
    _Rule(lambda s: s.has(_SHOW_LAST), _simple(IntentKind.SHOW_LAST, with_resource=False)),
    _Rule(_asks_fix, _fix),
    _Rule(_asks_history, _history),
    _Rule(lambda s: s.has(_SCAN), _simple(IntentKind.SCAN)),
    _Rule(lambda s: s.has(_STATUS), _simple(IntentKind.STATUS)),
)  # fmt: skip

# While a plan is pending, the read-only asks a question may still be (not WHY: handled first).
_READ_KINDS = frozenset((IntentKind.SHOW, IntentKind.SHOW_LAST, IntentKind.HISTORY, IntentKind.STATUS, IntentKind.SCAN))


def route(
    text: str,
    resources: Sequence[tuple[str, str]],
    pending: bool,
    *,
    now: float | None = None,
    tz: tzinfo | None = None,
) -> Intent:
    """What `text` asks for. `resources`: (name, kind) pairs (`ResourceRef`s); `pending`: a plan waits for approval.

    `now` (epoch seconds, default the clock) and `tz` (default the local zone) anchor time windows.
    """
    said = _said(text, resources, now, tz)
    if not said.words:
        return _help(said)
    decision = _decision(said)
    if pending:
        if decision is not None:
            return Intent(decision, text=said.raw)
        if said.is_question():
            if _asks_why(said):
                return _why(said)
            if not said.has(_PLAN_WORDS) and (read := _first_rule(said)) is not None and read.kind in _READ_KINDS:
                return read
            return _question(said)
        if _asks_change(said):
            return _change(said)
    elif decision is not None:
        message = f"No plan is waiting for approval, so there is nothing to {decision}. {help_text(said.resources)}"
        return Intent(IntentKind.UNKNOWN, text=said.raw, message=message)
    found = _first_rule(said)
    if found is not None:
        return found
    return Intent(IntentKind.UNKNOWN, text=said.raw, message=f"I did not understand that. {help_text(said.resources)}")


def _first_rule(said: _Said) -> Intent | None:
    return next((rule.intent(said) for rule in _RULES if rule.matches(said)), None)


def _help(said: _Said) -> Intent:
    return Intent(IntentKind.HELP, text=said.raw, message=help_text(said.resources))


def help_text(resources: Sequence[tuple[str, str]]) -> str:
    """What the router understands, with the inventory's names (also the HELP and UNKNOWN message)."""
    return (
        f"({RULE_BASED}.) I understand: "
        "'what's wrong?' (status), 'scan now', 'fix the cache' (or any resource by name or kind), "
        "'show the last incident', 'show inc-…' (an incident id), 'why?' (explain the plan), "
        "'what did you do last night?' / 'actions in the last 2 hours' / 'yesterday' (history); "
        "while a plan waits: 'approve', 'reject', or a change such as 'use redis_memory_purge instead', "
        f"'only 128 MB', 'don't restart'. Resources: {_listing([ResourceRef(*r) for r in resources])}."
    )
