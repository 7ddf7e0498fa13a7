"""The rule-based router: every example of the chat issue routes right, and near misses do not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from opsgraph.chat.router import MAX_TEXT, RULE_BASED, Intent, IntentKind, ResourceRef, route
from opsgraph.tools.inventory import ResourceKind

SHOP = (
    ResourceRef("cache", "redis"),
    ResourceRef("db", "postgres"),
    ResourceRef("shop", "http"),
    ResourceRef("edge", "nginx"),
)
# Kinds reached only by alias: no name collides with a word the operator uses.
PLAIN = (
    ResourceRef("sessions", "redis"),
    ResourceRef("orders-pg", "postgres"),
    ResourceRef("storefront", "http"),
    ResourceRef("lb-1", "nginx"),
)
PARIS_SUMMER = timezone(timedelta(hours=2))
NOW = datetime(2026, 6, 10, 14, 30, tzinfo=PARIS_SUMMER).timestamp()  # a Wednesday


def said(text: str, pending: bool = False, resources: tuple[ResourceRef, ...] = SHOP) -> Intent:
    return route(text, resources, pending, now=NOW, tz=PARIS_SUMMER)


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 6, day, hour, minute, tzinfo=PARIS_SUMMER).timestamp()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("what's wrong?", IntentKind.STATUS),
        ("What\u2019s wrong??", IntentKind.STATUS),  # a typographic apostrophe
        ("status", IntentKind.STATUS),
        ("health", IntentKind.STATUS),
        ("is everything ok", IntentKind.STATUS),
        ("what is broken", IntentKind.STATUS),
        ("why?", IntentKind.WHY),
        ("explain the plan", IntentKind.WHY),
        ("show the last incident", IntentKind.SHOW_LAST),
        ("last incident", IntentKind.SHOW_LAST),
        ("scan now", IntentKind.SCAN),
        ("  SCAN   now... ", IntentKind.SCAN),
        ("scan", IntentKind.SCAN),
        ("probe everything", IntentKind.SCAN),
        ("help", IntentKind.HELP),
        ("", IntentKind.HELP),
        ("?!", IntentKind.HELP),
    ],
)
def test_the_issue_examples_route_to_their_intent(text: str, kind: IntentKind) -> None:
    assert said(text).kind is kind
    assert said(text, pending=True).kind is kind  # a pending plan does not change what these ask


@pytest.mark.parametrize(
    ("text", "resource"),
    [
        ("fix the cache", "cache"),
        ("fix db", "db"),
        ("repair the database", "db"),
        ("FIX THE CACHE!!!", "cache"),
        ("could you please fix the shop", "shop"),
    ],
)
def test_fix_resolves_an_inventory_name(text: str, resource: str) -> None:
    assert said(text) == Intent(IntentKind.FIX, text=text.strip(), resource=resource)


@pytest.mark.parametrize(
    ("text", "resource"),
    [
        ("fix the cache", "sessions"),
        ("fix redis", "sessions"),
        ("fix the db", "orders-pg"),
        ("repair the database", "orders-pg"),
        ("fix postgres", "orders-pg"),
        ("fix the proxy", "lb-1"),
        ("fix nginx", "lb-1"),
        ("fix the edge", "lb-1"),
        ("fix the app", "storefront"),
        ("fix the api", "storefront"),
        ("fix the shop", "storefront"),
        ("fix orders-pg", "orders-pg"),  # a name with a hyphen
        ("fix orders pg", "orders-pg"),
    ],
)
def test_fix_resolves_a_kind_alias_to_the_one_resource_of_that_kind(text: str, resource: str) -> None:
    intent = said(text, resources=PLAIN)
    assert (intent.kind, intent.resource) == (IntentKind.FIX, resource)


def test_fix_never_guesses_between_resources_of_one_kind() -> None:
    two_caches = (*PLAIN, ResourceRef("rate-limits", "redis"))
    intent = said("fix the cache", resources=two_caches)
    assert intent.kind is IntentKind.CLARIFY and intent.wanted is IntentKind.FIX and intent.resource is None
    assert intent.candidates == ("sessions", "rate-limits")
    assert "several resources are redis" in intent.message and "sessions (redis), rate-limits (redis)" in intent.message


def test_fix_of_a_kind_the_inventory_lacks_lists_every_name() -> None:
    intent = said("fix the database", resources=(ResourceRef("cache", "redis"), ResourceRef("edge", "nginx")))
    assert intent.kind is IntentKind.CLARIFY and intent.candidates == ("cache", "edge")
    assert "no postgres resource" in intent.message and "cache (redis), edge (nginx)" in intent.message


@pytest.mark.parametrize("text", ["fix it", "fix the frobnicator", "fix cache and db", "fix the db and the cache"])
def test_fix_without_exactly_one_resource_asks_which(text: str) -> None:
    intent = said(text)
    assert intent.kind is IntentKind.CLARIFY and intent.resource is None
    assert set(intent.candidates) <= {"cache", "db", "shop", "edge"} and len(intent.candidates) >= 2


def test_fix_it_with_a_single_resource_in_the_inventory_needs_no_name() -> None:
    assert said("fix it", resources=(ResourceRef("cache", "redis"),)).resource == "cache"


def test_why_carries_the_resource_and_the_incident_it_names() -> None:
    intent = said("why do you want to restart the db?")
    assert (intent.kind, intent.resource) == (IntentKind.WHY, "db")
    intent = said("why did inc-20260610-120000-cache-0a1b2c fail?")
    assert intent.kind is IntentKind.WHY and intent.incident_id == "inc-20260610-120000-cache-0a1b2c"


def test_an_incident_id_shows_that_incident() -> None:
    incident = "inc-20260610-031500-orders-pg-9f3e2a"  # the detector's form: a resource name with a hyphen
    assert said(f"show {incident} please") == Intent(
        IntentKind.SHOW, text=f"show {incident} please", incident_id=incident
    )
    assert said(f"{incident}").incident_id == incident
    thread = "3f2a9c1e-77aa-4c3b-9d2e-0f1e2d3c4b5a"  # a thread opened from Studio
    assert said(f"show incident {thread}").incident_id == thread
    no_id = said("show incident history")  # a word after "incident" is not an id
    assert no_id.kind is not IntentKind.SHOW and no_id.incident_id is None


@pytest.mark.parametrize(
    ("text", "since", "until", "window"),
    [
        ("what did you do last night?", at(9, 18), at(10, 8), "last night (yesterday 18:00 to today 08:00)"),
        ("what happened today", at(10, 0), NOW, "today"),
        ("actions in the last 2 hours", NOW - 7200, NOW, "the last 2 hours"),
        ("yesterday", at(9, 0), at(10, 0), "yesterday"),
        ("anything in the past 30 minutes?", NOW - 1800, NOW, "the last 30 minutes"),
        ("history of the last hour", NOW - 3600, NOW, "the last 1 hour"),
        ("what did you do over the past few days", NOW - 3 * 86400, NOW, "the last 3 days"),
        ("what did you do this morning", at(10, 0), at(10, 12), "this morning (00:00 to 12:00)"),
        ("actions this week", at(8, 0), NOW, "this week (since Monday 00:00)"),
        ("what did you do?", NOW - 86400, NOW, "the last 24 hours"),
        ("what did you fix last night?", at(9, 18), at(10, 8), "last night (yesterday 18:00 to today 08:00)"),
    ],
)
def test_history_windows_are_computed_from_now_in_the_time_zone(
    text: str, since: float, until: float, window: str
) -> None:
    intent = said(text)
    assert (intent.kind, intent.since, intent.until, intent.window) == (IntentKind.HISTORY, since, until, window)


def test_last_night_spans_a_daylight_saving_change() -> None:
    paris = ZoneInfo("Europe/Paris")  # clocks went from 02:00 to 03:00 on 2026-03-29
    now = datetime(2026, 3, 29, 10, 0, tzinfo=paris).timestamp()
    intent = route("what did you do last night", SHOP, False, now=now, tz=paris)
    assert intent.since == datetime(2026, 3, 28, 17, 0, tzinfo=UTC).timestamp()  # 18:00 CET
    assert intent.until == datetime(2026, 3, 29, 6, 0, tzinfo=UTC).timestamp()  # 08:00 CEST


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_without_a_zone_windows_are_in_the_local_zone() -> None:
    now = datetime(2026, 6, 10, 12, 0, tzinfo=UTC).timestamp()  # 08:00 in New York (EDT, UTC-4)
    intent = route("yesterday", SHOP, False, now=now)
    assert intent.since == datetime(2026, 6, 9, 4, 0, tzinfo=UTC).timestamp()
    assert intent.until == datetime(2026, 6, 10, 4, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("approve", IntentKind.APPROVE),
        ("yes, go ahead", IntentKind.APPROVE),
        ("OK, do it please", IntentKind.APPROVE),
        ("approve the plan", IntentKind.APPROVE),
        ("reject", IntentKind.REJECT),
        ("no", IntentKind.REJECT),
        ("No, don't do it.", IntentKind.REJECT),
        ("cancel", IntentKind.REJECT),
    ],
)
def test_a_bare_yes_or_no_decides_a_pending_plan(text: str, kind: IntentKind) -> None:
    assert said(text, pending=True) == Intent(kind, text=text)


@pytest.mark.parametrize("text", ["approve", "yes, go ahead", "reject", "no"])
def test_a_decision_with_nothing_pending_decides_nothing(text: str) -> None:
    intent = said(text)
    assert intent.kind is IntentKind.UNKNOWN
    assert "No plan is waiting for approval" in intent.message and RULE_BASED in intent.message


@pytest.mark.parametrize(
    ("text", "tool", "memory_mb", "avoid"),
    [
        ("use redis_memory_purge instead", "redis_memory_purge", None, ()),
        ("only 128 MB", None, 128, ()),
        ("128MB instead", None, 128, ()),
        ("don't restart", None, None, ("restart",)),
        ("skip the flush", None, None, ("flush",)),
        ("without flushing please", None, None, ("flush",)),
        ("make it 1 GB", None, 1024, ()),
        ("1.5 GB instead of redis_scale_memory", None, 1536, ("redis_scale_memory",)),
        ("no, use redis_memory_purge instead", "redis_memory_purge", None, ()),  # not a bare "no"
        ("yes but only 96 mb", None, 96, ()),  # not a bare "yes"
        ("could you use 128 MB instead?", None, 128, ()),  # a request, though it ends with "?"
        ("do not restart the cache, purge it", None, None, ("restart",)),
        ("don't use redis_flush", None, None, ("redis_flush",)),
        ("no flush", None, None, ("flush",)),
    ],
)
def test_words_that_alter_a_pending_plan_are_a_change(
    text: str, tool: str | None, memory_mb: int | None, avoid: tuple[str, ...]
) -> None:
    intent = said(text, pending=True)
    assert intent.kind is IntentKind.CHANGE and intent.text == text
    assert (intent.tool, intent.memory_mb, intent.avoid) == (tool, memory_mb, avoid)


def test_a_change_carries_the_resource_it_names() -> None:
    assert said("do not restart the cache, purge it", pending=True).resource == "cache"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("why?", IntentKind.WHY),
        ("why do you want to restart?", IntentKind.WHY),
        ("why not use redis_memory_purge instead?", IntentKind.WHY),
        ("explain", IntentKind.WHY),
        ("what does it do?", IntentKind.QUESTION),
        ("what does redis_memory_purge do?", IntentKind.QUESTION),
        ("is this step safe?", IntentKind.QUESTION),
        ("what is wrong with the plan?", IntentKind.QUESTION),  # about the plan, not the inventory
        ("what's wrong?", IntentKind.STATUS),
        ("show the last incident", IntentKind.SHOW_LAST),
        ("what did you do last night?", IntentKind.HISTORY),
    ],
)
def test_a_question_while_pending_keeps_the_plan_pending(text: str, kind: IntentKind) -> None:
    assert said(text, pending=True).kind is kind


def test_a_question_names_the_tool_it_asks_about() -> None:
    assert said("what does redis_memory_purge do?", pending=True).tool == "redis_memory_purge"


@pytest.mark.parametrize("text", ["use redis_memory_purge instead", "only 128 MB", "don't restart", "skip the flush"])
def test_a_change_with_nothing_pending_is_not_a_change(text: str) -> None:
    assert said(text).kind is not IntentKind.CHANGE


@pytest.mark.parametrize("text", ["hello", "the weather in Lyon", "banana"])
def test_what_it_does_not_understand_it_says_so_with_what_it_does(text: str) -> None:
    intent = said(text)
    assert intent.kind is IntentKind.UNKNOWN
    assert RULE_BASED in intent.message and "fix the cache" in intent.message
    assert "cache (redis), db (postgres), shop (http), edge (nginx)" in intent.message


def test_help_says_it_is_rule_based_and_lists_the_resources() -> None:
    intent = said("help")
    assert RULE_BASED in intent.message and "db (postgres)" in intent.message


def test_status_and_scan_name_a_resource_only_when_it_is_unambiguous() -> None:
    assert said("is the cache ok?").resource == "cache"
    assert said("scan the db").resource == "db"
    assert said("scan now").resource is None
    two_caches = (*SHOP, ResourceRef("sessions", "redis"))
    assert said("is redis ok?", resources=two_caches).resource is None


def test_huge_and_hostile_text_is_cut_before_matching() -> None:
    hostile = "show inc-20260610-120000-" + "a-" * 200_000 + "?"  # almost an id, for as long as it goes
    intent = said(hostile)
    assert len(intent.text) == MAX_TEXT and intent.kind is IntentKind.UNKNOWN and intent.incident_id is None
    assert said("fix " + "the " * 100_000 + "cache").kind is IntentKind.CLARIFY  # the name is past the cut


def test_resources_may_be_plain_pairs_with_the_inventory_kind_enum() -> None:
    pairs = [("sessions", ResourceKind.REDIS), ("orders-pg", ResourceKind.POSTGRES)]
    assert route("repair the database", pairs, False).resource == "orders-pg"
    assert "sessions (redis), orders-pg (postgres)" in route("help", pairs, False).message
