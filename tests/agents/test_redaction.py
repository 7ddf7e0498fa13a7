"""Redaction: every credential format we know of is masked; ordinary text is left alone."""

from __future__ import annotations

import pytest
from llm_fixtures import cache_inventory

from opsgraph.agents.redaction import MASK, inventory_secrets, redact

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
    (f"access_token={SECRET}", "access_token="),
    (f"SECRET_KEY={SECRET}", "SECRET_KEY="),
    (f"Authorization: Bearer {SECRET}abcdef", "Bearer "),
    ("Authorization: Basic dXNlcjpodW50ZXIyMjI=", "Basic "),
    (f"mysqld --password={SECRET} --user=root", "--password="),
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
        "http://127.0.0.1:18080/health -> 503; token bucket refilled; tokens_used 120"
    )
    assert redact(text) == text


def test_inventory_secrets_reads_the_variables_the_inventory_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_PASSWORD", SECRET)
    assert inventory_secrets(cache_inventory(password_env="CACHE_PASSWORD")) == [SECRET]
    monkeypatch.delenv("CACHE_PASSWORD")
    assert inventory_secrets(cache_inventory(password_env="CACHE_PASSWORD")) == []
    assert inventory_secrets(cache_inventory()) == []
