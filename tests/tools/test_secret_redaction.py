"""Redaction: every credential format and every known secret value is masked; ordinary text is left alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsgraph.settings import ENV_FILE_VARIABLE
from opsgraph.tools.inventory import Inventory, load_inventory, parse_inventory
from opsgraph.tools.redaction import MASK, inventory_secrets, known_secrets, redact, redact_value
from opsgraph.tools.runner import ToolOutcome
from opsgraph.tools.snapshot import Health, Snapshot

SECRET = "Zq9-hunter2-Xv"

LEAKS = [
    (f"postgresql://shop:{SECRET}@127.0.0.1:15432/shop", "postgresql://shop:"),
    (f"redis://:{SECRET}@cache:6379/0", "redis://:"),
    (f"amqp://guest:{SECRET}@mq/vhost", "amqp://guest:"),
    (f"https://deploy:{SECRET}@git.example.com/repo.git", "https://deploy:"),
    (f"host=db port=5432 user=shop password={SECRET} dbname=shop", "password="),
    (f"PGPASSWORD={SECRET} psql -h db", "PGPASSWORD="),
    (f'{{"password": "{SECRET}", "user": "shop"}}', '"password": "'),
    (f"db_password: {SECRET}", "db_password: "),
    (f"REDIS_PASSWORD='{SECRET}'", "REDIS_PASSWORD='"),
    (f"api_key={SECRET}&q=1", "api_key="),
    (f"X-Api-Key: {SECRET}", "X-Api-Key: "),
    (f"client_secret={SECRET}", "client_secret="),
    (f"AccessKey={SECRET}", "AccessKey="),
    (f"privatekey: {SECRET}", "privatekey: "),
    (f"access_token={SECRET}", "access_token="),
    (f"SECRET_KEY={SECRET}", "SECRET_KEY="),
    (f"Authorization: Bearer {SECRET}abcdef", "Bearer "),
    ("Authorization: Basic dXNlcjpodW50ZXIyMjI=", "Basic "),
    (f"mysqld --password={SECRET} --user=root", "--password="),
    (f"redis-server --port 6379 --requirepass {SECRET} --masterauth {SECRET}", "--requirepass "),
    (f"ALTER ROLE app PASSWORD '{SECRET}'", "PASSWORD '"),
    (f"CREATE ROLE app LOGIN ENCRYPTED PASSWORD '{SECRET}' VALID UNTIL 'infinity'", "PASSWORD '"),
    (f"alter user app with password '{SECRET}''s'", "password '"),
]

KEY_FORMATS = [
    "AKIAIOSFODNN7EXAMPLE",
    "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
    "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-1234567890-abcdefghij",
    "ya29.a0AfH6SMBabcdefghijklmnopqrstuvwx",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
]


@pytest.mark.parametrize(("text", "kept_prefix"), LEAKS)
def test_credentials_in_urls_and_key_values_are_masked(text: str, kept_prefix: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned
    assert MASK in cleaned
    assert kept_prefix in cleaned  # the shape stays readable: the model still sees *that* a password is set


@pytest.mark.parametrize("key", KEY_FORMATS)
def test_well_known_key_formats_are_masked(key: str) -> None:
    cleaned = redact(f"found {key} in the environment")
    assert key not in cleaned
    assert "found" in cleaned and "in the environment" in cleaned


def test_literal_secrets_vanish_wherever_they_appear() -> None:
    text = f"AUTH failed for client with {SECRET}; retrying as {SECRET.upper()} x{SECRET}y"
    cleaned = redact(text, [SECRET, "ab"])  # too-short literals are ignored, not shredding the text
    assert SECRET not in cleaned
    assert "AUTH failed" in cleaned and "retrying" in cleaned


def test_ordinary_operational_text_is_untouched() -> None:
    text = (
        "used_memory 62.0 MiB of maxmemory 64.0 MiB; maxmemory_policy noeviction; "
        "http://127.0.0.1:18080/health -> 503; token bucket refilled; tokens_used 120; "
        "basic settings applied, the bearer of the lock is pid 4242"
    )
    assert redact(text) == text


def cache_inventory(password_env: str | None = None) -> Inventory:
    connection: dict[str, Any] = {"host": "127.0.0.1", "port": 16379}
    if password_env:
        connection["password_env"] = password_env
    return parse_inventory({"resources": [{"name": "cache", "kind": "redis", "connection": connection}]})


def test_inventory_secrets_reads_the_variables_the_inventory_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_PASSWORD", SECRET)
    assert inventory_secrets(cache_inventory(password_env="CACHE_PASSWORD")) == [SECRET]
    monkeypatch.delenv("CACHE_PASSWORD")
    assert inventory_secrets(cache_inventory(password_env="CACHE_PASSWORD")) == []
    assert inventory_secrets(cache_inventory()) == []


def test_a_parsed_inventory_s_passwords_are_masked_everywhere_from_then_on(monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "PlantedOnlyByValue-881"
    monkeypatch.setenv("OPSGRAPH_TEST_REGISTERED_PASSWORD", planted)
    assert redact(f"SELECT '{planted}'") == f"SELECT '{planted}'"  # no pattern spots a bare value
    cache_inventory(password_env="OPSGRAPH_TEST_REGISTERED_PASSWORD")
    assert redact(f"SELECT '{planted}'") == f"SELECT '{MASK}'"
    rotated = "RotatedAfterLoading-990"  # read at each redaction: a password changed later is masked too
    monkeypatch.setenv("OPSGRAPH_TEST_REGISTERED_PASSWORD", rotated)
    assert redact(f"{rotated} / {planted}") == f"{MASK} / {planted}"


def test_load_inventory_registers_its_password_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGRAPH_TEST_FILE_PASSWORD", "FromTheFileInventory-12")
    path = tmp_path / "opsgraph.yaml"
    resource = {
        "name": "db",
        "kind": "postgres",
        "connection": {"port": 5432, "password_env": "OPSGRAPH_TEST_FILE_PASSWORD"},
    }
    path.write_text(yaml.safe_dump({"version": 1, "resources": [resource]}))
    load_inventory(path)
    assert "FromTheFileInventory-12" in known_secrets()


def test_secret_settings_are_known_secrets_from_the_environment_and_the_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("OPENAI_API_KEY=only-in-the-env-file-42\n")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(env_file))
    monkeypatch.setenv("GOOGLE_API_KEY", "not-a-google-format-key-43")
    monkeypatch.setenv("OPSGRAPH_MCP_TOKEN", "the-mcp-bearer-token-45")
    text = "keys: only-in-the-env-file-42, not-a-google-format-key-43, the-mcp-bearer-token-45"
    assert redact(text) == f"keys: {MASK}, {MASK}, {MASK}"
    monkeypatch.setenv("GOOGLE_API_KEY", "a-key-set-later-44")  # the settings are read again when a source changes
    assert redact("a-key-set-later-44 / not-a-google-format-key-43") == f"{MASK} / not-a-google-format-key-43"


def test_json_escaped_values_are_masked_too() -> None:
    quoted = 'pa"ss\\word-7'  # inside JSON text (a log line, a stored record) it reads pa\"ss\\word-7
    text = json.dumps({"line": f"got {quoted} from the client"})
    assert redact(text, [quoted]) == json.dumps({"line": f"got {MASK} from the client"})


def test_redact_value_walks_structures_and_keeps_their_types() -> None:
    value = {
        "url": f"redis://:{SECRET}@cache:6379",
        "rows": [(1, f"SELECT '{SECRET}'"), {"nested": [SECRET]}],
        "count": 3,
        "ratio": 0.5,
        "none": None,
        "health": Health.FAILED,
    }
    cleaned = redact_value(value, [SECRET])
    assert SECRET not in repr(cleaned)
    assert cleaned["url"] == f"redis://:{MASK}@cache:6379"
    assert cleaned["rows"] == [(1, f"SELECT '{MASK}'"), {"nested": [MASK]}]
    assert isinstance(cleaned["rows"][0], tuple)
    assert cleaned["count"] == 3 and cleaned["ratio"] == 0.5 and cleaned["none"] is None
    assert cleaned["health"] is Health.FAILED
    assert value["url"] == f"redis://:{SECRET}@cache:6379"  # a copy: the original is untouched


def test_a_value_under_a_secret_key_is_masked_whole() -> None:
    config = {"requirepass": "no-pattern-spots-this", "masterauth": "nor-this", "maxmemory": "64mb"}
    counts = {"tokens_used": 120, "password_env": "SHOP_DB_PASSWORD", "auth_failures": "3", "api_key": ""}
    assert redact_value(config) == {"requirepass": MASK, "masterauth": MASK, "maxmemory": "64mb"}
    assert redact_value(counts) == counts  # names that merely contain a word, numbers, empty values: kept
    lease = {"token": "9f2c41d0a3b84e7f", "password": f"password={SECRET}"}  # a record's own field, named so
    assert redact_value(lease, by_key=False) == {"token": "9f2c41d0a3b84e7f", "password": f"password={MASK}"}


def test_redact_value_returns_the_same_model_type_with_every_text_field_masked() -> None:
    outcome = ToolOutcome(ok=False, output={"lines": [f"FATAL: password={SECRET}"]}, error=f"x {SECRET}", duration_s=1)
    cleaned = redact_value(outcome, [SECRET])
    assert isinstance(cleaned, ToolOutcome)
    assert SECRET not in cleaned.model_dump_json()
    assert cleaned.duration_s == 1 and cleaned.ok is False
    snapshot = Snapshot(
        resource="db", kind="postgres", health=Health.FAILED, symptom="postgres_unreachable",
        reasons=[f"postgresql://app:{SECRET}@db failed"], metrics={"dsn": f"password={SECRET}", "n": 1}, taken_at=0,
    )  # fmt: skip
    clean_snapshot = redact_value(snapshot, [SECRET])
    assert isinstance(clean_snapshot, Snapshot) and clean_snapshot.health is Health.FAILED
    assert SECRET not in clean_snapshot.model_dump_json() and clean_snapshot.metrics["n"] == 1


def test_a_large_output_is_redacted_in_linear_time() -> None:
    # 20 000 log lines with 50 known values: one pass per pattern, not one per value and line.
    secrets = [f"known-secret-{index:03d}" for index in range(50)]
    lines = [f"line {index}: user connected from 10.0.0.{index % 250}" for index in range(20_000)]
    lines[12_345] += f" with {secrets[17]}"
    cleaned = redact_value({"lines": lines}, secrets)
    assert cleaned["lines"][12_345].endswith(f"with {MASK}")
    assert cleaned["lines"][0] == lines[0]
