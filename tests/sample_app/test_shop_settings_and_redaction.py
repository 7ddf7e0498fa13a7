"""Settings from the environment and password redaction: plain functions, no servers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from shop.logs import JsonFormatter, redact, url_passwords
from shop.settings import Settings, SettingsError

REQUIRED = {"SHOP_DATABASE_URL": "postgresql://shop@db/shop", "SHOP_REDIS_URL": "redis://cache:6379/0"}


def test_defaults_and_overrides() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.db_pool_max, defaults.db_pool_timeout_s, defaults.slow_query_ms) == (10, 2.0, 500.0)
    assert defaults.log_file is None

    custom = Settings.from_env({**REQUIRED, "SHOP_DB_POOL_MAX": "3", "SHOP_LOG_FILE": "/tmp/shop.jsonl"})
    assert custom.db_pool_max == 3
    assert custom.log_file == Path("/tmp/shop.jsonl")


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"SHOP_REDIS_URL": "redis://x"}, "SHOP_DATABASE_URL is required"),
        ({**REQUIRED, "SHOP_DB_POOL_MAX": "many"}, "SHOP_DB_POOL_MAX='many' is not a valid int"),
        ({**REQUIRED, "SHOP_DB_POOL_TIMEOUT_S": "0"}, "SHOP_DB_POOL_TIMEOUT_S must be positive"),
    ],
)
def test_bad_settings_name_the_variable(environment: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environment)


def test_passwords_are_found_in_urls_and_conninfo() -> None:
    assert url_passwords("postgresql://app:p%40ss@db/shop") == {"p%40ss", "p@ss"}
    assert url_passwords("host=db password='se cret' dbname=shop") == {"se cret"}
    assert url_passwords("redis://:hunter2@cache:6379/0") == {"hunter2"}
    assert url_passwords("redis://cache:6379/0") == set()


def test_redaction_masks_known_and_credential_shaped_secrets() -> None:
    assert redact("failed for postgresql://app:hunter2@db/shop") == "failed for postgresql://app:***@db/shop"
    assert redact("host=db password=hunter2 port=5432") == "host=db password=*** port=5432"
    assert redact("the token is hunter2", ["hunter2"]) == "the token is ***"


def test_formatter_writes_one_scrubbed_json_object() -> None:
    record = logging.LogRecord("shop", logging.ERROR, __file__, 1, "boom", None, None)
    record.event = "dependency_error"
    record.fields = {"cause": "redis_oom", "error": "auth hunter2 refused", "nested": ["x hunter2"]}

    line = JsonFormatter(["hunter2"]).format(record)

    payload = json.loads(line)
    assert "\n" not in line
    assert {"ts", "level", "event"} <= set(payload)
    assert (payload["level"], payload["event"], payload["cause"]) == ("error", "dependency_error", "redis_oom")
    assert "hunter2" not in line
