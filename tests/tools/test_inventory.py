"""The inventory rejects malformed files with the file and the field in the message."""

from pathlib import Path

import pytest

from opsgraph.tools.inventory import InventoryError, load_inventory, parse_inventory

VALID = {"resources": [{"name": "cache", "kind": "redis", "connection": {"port": 16379}}]}


def one(**fields: object) -> dict[str, object]:
    """An inventory with one resource: the valid one, changed by `fields`."""
    return {"resources": [{**VALID["resources"][0], **fields}]}


def test_committed_inventory_is_valid() -> None:
    inventory = load_inventory(Path(__file__).parents[2] / "opsgraph.yaml")
    assert {r.name for r in inventory.resources} == {"cache", "db", "shop", "edge"}


def test_defaults_fill_in() -> None:
    resource = parse_inventory(VALID).get("cache")
    assert resource.environment == "local"
    assert resource.thresholds.memory_used_pct.failed == 95
    assert resource.policy.max_risk == "disruptive"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"resources": [{"name": "cache", "kind": "redis", "connection": {"port": "x"}}]},
            "resources[0].connection.port",
        ),
        ({"resources": [{"name": "cache", "kind": "mongo", "connection": {"port": 1}}]}, "resources[0].kind"),
        (
            {"resources": [{"name": "cache", "kind": "redis", "connection": {"port": 1}, "typo": 1}]},
            "resources[0].typo",
        ),
        ({"resources": [{"name": "Bad Name", "kind": "redis", "connection": {"port": 1}}]}, "resources[0].name"),
        ({"resources": [{"kind": "redis", "connection": {"port": 1}}]}, "resources[0].name"),
        (
            {
                "resources": [
                    {**VALID["resources"][0], "thresholds": {"memory_used_pct": {"degraded": 90, "failed": 50}}}
                ]
            },
            "resources[0].thresholds.memory_used_pct",
        ),
        ({"resources": [VALID["resources"][0], VALID["resources"][0]]}, "appears twice"),
        ({"resources": [{**VALID["resources"][0], "policy": {"max_risk": "yolo"}}]}, "resources[0].policy.max_risk"),
        ([1, 2], "(top level)"),
    ],
)
def test_malformed_inventory_names_the_field(data: object, expected: str) -> None:
    with pytest.raises(InventoryError) as error:
        parse_inventory(data, "opsgraph.yaml")
    assert "opsgraph.yaml" in str(error.value)
    assert expected in str(error.value)


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read inventory"):
        load_inventory(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("resources: [\n")
    with pytest.raises(InventoryError, match="not valid YAML"):
        load_inventory(broken)


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"resources": [{"name": "db", "kind": "postgres", "connection": {"port": 5432, "password_env": "DB_PW"}}]}
    monkeypatch.setenv("DB_PW", "s3cret")
    assert parse_inventory(data).get("db").connection.password() == "s3cret"


def external(section: dict[str, object]) -> dict[str, object]:
    return one(environment="external", external=section)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"lifecycle": "commands", "commands": {"restart": ["no-such-binary-xyz"]}},
         "resources[0].external.commands: Value error, restart: 'no-such-binary-xyz' was not found on PATH"),
        ({"lifecycle": "commands", "commands": {"start": ["/nonexistent/redis-server", "/etc/redis.conf"]}},
         "start: '/nonexistent/redis-server' is not an executable file"),
        ({"lifecycle": "commands", "commands": {"start": "redis-server /etc/redis.conf"}},
         "resources[0].external.commands.start: Input should be a valid list"),  # never a shell string
        ({"lifecycle": "commands", "commands": {"start": []}}, "resources[0].external.commands.start"),
        ({"lifecycle": "commands"}, "lifecycle: commands needs `commands`"),
        ({"lifecycle": "systemd"}, "lifecycle: systemd needs `systemd: {unit: NAME}`"),
        ({"lifecycle": "systemd", "systemd": {"unit": "--host=evil"}}, "resources[0].external.systemd.unit"),
        ({"commands": {"start": ["true"]}}, "`commands` is only read with lifecycle: commands"),
        ({"paths": {"data_dir": "var/lib/redis"}}, "var/lib/redis is not an absolute path"),
        ({"paths": {"datadir": "/var/lib/redis"}}, "resources[0].external.paths.datadir"),
        ({"lifecycle": "sometimes"}, "resources[0].external.lifecycle"),
    ],
)  # fmt: skip
def test_malformed_external_section_names_the_field(section: dict[str, object], expected: str) -> None:
    with pytest.raises(InventoryError) as error:
        parse_inventory(external(section), "opsgraph.yaml")
    assert expected in str(error.value)


def test_the_external_section_belongs_to_external_resources() -> None:
    with pytest.raises(InventoryError, match="the `external` section applies to environment: external, not local"):
        parse_inventory(one(external={"paths": {"data_dir": "/var/lib/redis"}}), "opsgraph.yaml")


def test_an_external_resource_without_a_section_has_no_lifecycle() -> None:
    resource = parse_inventory(one(environment="external")).get("cache")
    assert resource.external.lifecycle == "none"
    assert resource.external.lifecycle_commands().declared() == {}
    assert not resource.managed_by_opsgraph
