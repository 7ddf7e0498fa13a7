"""The inventory rejects malformed files with the file and the field in the message."""

import re
from pathlib import Path

import pytest

from opsgraph.tools.inventory import (
    MAX_INVENTORY_BYTES,
    MAX_RESOURCES,
    InventoryError,
    load_inventory,
    parse_inventory,
)

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
        (
            {"resources": [{**VALID["resources"][0], "policy": {"deny_tools": ["redis_flsh"]}}]},
            "resources[0].policy.deny_tools: Value error, unknown tool(s) ['redis_flsh']",
        ),
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


# Finding 7 of issue 10: values that used to be accepted and silently changed what OpsGraph does.
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (one(thresholds={"memory_used_pct": {"degraded": float("nan"), "failed": 95}}),
         "resources[0].thresholds.memory_used_pct.degraded: Input should be a finite number"),  # detection off
        (one(thresholds={"latency_ms": {"degraded": 500, "failed": float("inf")}}),
         "resources[0].thresholds.latency_ms.failed: Input should be a finite number"),
        (one(environment="external", external={"timeout_s": float("nan")}),
         "resources[0].external.timeout_s: Input should be a finite number"),
        (one(connection={"port": True}), "resources[0].connection.port: Input should be a valid integer"),  # not port 1
        (one(connection={"port": "16379"}), "resources[0].connection.port: Input should be a valid integer"),
        (one(policy={"max_memory_mb": 512.0}), "resources[0].policy.max_memory_mb: Input should be a valid integer"),
        (one(thresholds={"blocked_queries": {"degraded": True, "failed": 5}}),
         "resources[0].thresholds.blocked_queries.degraded: Input should be a valid number"),
        ({**VALID, "version": True}, "version: Value error, version must be the integer 1, got True"),
    ],
)  # fmt: skip
def test_numbers_are_finite_and_integers_are_integers(data: object, expected: str) -> None:
    with pytest.raises(InventoryError) as error:
        parse_inventory(data, "opsgraph.yaml")
    assert expected in str(error.value)


def postgres(**fields: object) -> dict[str, object]:
    return {"name": "db", "kind": "postgres", "connection": {"port": 15432, "user": "postgres"}, **fields}


SHOP = {
    "name": "shop",
    "kind": "http",
    "connection": {"port": 18000},
    "local": {"app_database": "db", "app_cache": "cache"},
}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ([postgres(local={"app_user": "postgres"})],
         "resources[0].local.app_user: Value error, 'postgres' is a PostgreSQL superuser or reserved role"),
        ([postgres(local={"app_user": "pg_monitor"})], "'pg_monitor' is a PostgreSQL superuser or reserved role"),
        ([postgres(connection={"port": 15432, "user": "admin"}, local={"app_user": "admin"})],
         "local.app_user 'admin' is the role OpsGraph connects as (connection.user)"),
        ([postgres(), VALID["resources"][0], SHOP],
         "resource 'shop' runs an app on 'db', which has no local.app_user"),  # it would log in as postgres
    ],
)  # fmt: skip
def test_the_app_never_logs_in_as_a_superuser(resources: list[dict[str, object]], expected: str) -> None:
    with pytest.raises(InventoryError) as error:
        parse_inventory({"resources": resources}, "opsgraph.yaml")
    assert expected in str(error.value)
    assert "never terminates" in str(error.value)  # and says why


def test_an_app_with_its_own_role_is_accepted() -> None:
    inventory = parse_inventory({"resources": [postgres(local={"app_user": "shop"}), VALID["resources"][0], SHOP]})
    assert inventory.get("db").local.app_user == "shop"


def test_a_key_given_twice_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "opsgraph.yaml"
    path.write_text("resources:\n  - name: cache\n    kind: redis\n    connection: {port: 1}\n    kind: postgres\n")
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == f"{path} is not valid YAML: line 5, column 5: key 'kind' appears twice (first on line 3)"


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "opsgraph.yaml"
    path.write_text("resources:\n  - &c {name: cache, kind: redis, connection: {port: 1}}\n  - {<<: *c, name: other}\n")
    assert [r.name for r in load_inventory(path).resources] == ["cache", "other"]


def test_the_number_of_resources_is_capped() -> None:
    resources = [{"name": f"r{i}", "kind": "redis", "connection": {"port": 1}} for i in range(MAX_RESOURCES + 1)]
    with pytest.raises(InventoryError) as error:
        parse_inventory({"resources": resources}, "opsgraph.yaml")
    assert f"resources: List should have at most {MAX_RESOURCES} items" in str(error.value)
    assert len(str(error.value).splitlines()) == 2  # one line, not one per resource


def test_the_file_size_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "opsgraph.yaml"
    path.write_text(f"resources: []\n#{'x' * MAX_INVENTORY_BYTES}\n")
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == f"{path} is larger than the inventory size cap of {MAX_INVENTORY_BYTES} bytes"


def test_a_binary_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "opsgraph.yaml"
    path.write_bytes(b"resources:\n\xff\xfe\x00garbage")
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(error.value) == f"{path} is not UTF-8 text (byte 0xff at offset 11): not an inventory file"


def test_a_long_list_of_errors_is_cut_short() -> None:
    resources = [{"name": f"R{i}", "kind": "redis", "connection": {"port": 1}} for i in range(50)]
    with pytest.raises(InventoryError) as error:
        parse_inventory({"resources": resources}, "opsgraph.yaml")
    lines = str(error.value).splitlines()
    assert len(lines) == 22 and lines[-1] == "  ... and 30 more"


# ---- the gcp section

GCP_VM = {
    "name": "web-1",
    "kind": "gcp_compute",
    "environment": "gcp",
    "gcp": {"project": "my-project-1", "zone": "us-central1-a"},
}


def test_a_gcp_resource_needs_no_port_and_names_its_instance() -> None:
    sql = {
        "name": "orders",
        "kind": "gcp_sql",
        "environment": "gcp",
        "gcp": {"project": "my-project-1", "instance": "orders-db"},
    }
    inventory = parse_inventory({"resources": [GCP_VM, sql]})
    vm = inventory.get("web-1")
    assert vm.gcp_settings.instance_name(vm.name) == "web-1" and vm.connection.port == 0
    assert vm.gcp_settings.operation_timeout_s == 600 and vm.gcp_settings.credentials_file is None
    assert inventory.get("orders").gcp_settings.instance_name("orders") == "orders-db"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"environment": "local"}, "kind gcp_compute needs environment: gcp"),
        ({"gcp": None}, "kind gcp_compute needs a `gcp` section"),
        ({"gcp": {"project": "my-project-1"}}, "gcp_compute needs gcp.zone"),
        ({"kind": "gcp_redis", "gcp": {"project": "my-project-1"}}, "gcp_redis needs gcp.region"),
        (
            {"kind": "gcp_sql", "gcp": {"project": "my-project-1", "zone": "us-central1-a"}},
            "gcp.zone applies to gcp_compute",
        ),
        ({"gcp": {"project": "My_Project", "zone": "us-central1-a"}}, "resources[0].gcp.project"),
        ({"gcp": {"project": "my-project-1", "zone": "central"}}, "resources[0].gcp.zone"),
        (
            {"gcp": {"project": "my-project-1", "zone": "us-central1-a", "instance": "Web_1"}},
            "resources[0].gcp.instance",
        ),
        (
            {"gcp": {"project": "my-project-1", "zone": "us-central1-a", "credentials_file": "key.json"}},
            "key.json is not an absolute path",
        ),
        (
            {"gcp": {"project": "my-project-1", "zone": "us-central1-a", "api_endpoint": "ftp://x/y"}},
            "resources[0].gcp.api_endpoint",
        ),
        (
            {"gcp": {"project": "my-project-1", "zone": "us-central1-a", "monitoring_endpoint": "localhost"}},
            "resources[0].gcp.monitoring_endpoint",
        ),
        (
            {"gcp": {"project": "my-project-1", "zone": "us-central1-a", "operation_timeout_s": 0.0}},
            "resources[0].gcp.operation_timeout_s",
        ),
        ({"policy": {"machine_types": ["E2 Medium"]}}, "resources[0].policy.machine_types"),
        ({"policy": {"sql_tiers": ["n1-standard-1"]}}, "resources[0].policy.sql_tiers"),
    ],
)
def test_a_malformed_gcp_resource_names_the_problem(changes: dict[str, object], expected: str) -> None:
    with pytest.raises(InventoryError, match=re.escape(expected)):
        parse_inventory({"resources": [{**GCP_VM, **changes}]})


def test_the_gcp_section_belongs_to_the_gcp_kinds() -> None:
    with pytest.raises(InventoryError, match="the `gcp` section applies to the GCP kinds, not redis"):
        parse_inventory(one(gcp={"project": "my-project-1", "region": "us-central1"}))
    with pytest.raises(InventoryError, match="environment: gcp holds the kinds gcp_compute, gcp_sql and gcp_redis"):
        parse_inventory(one(environment="gcp"))


def test_gcp_tools_can_be_denied_by_name() -> None:
    resource = parse_inventory({"resources": [{**GCP_VM, "policy": {"deny_tools": ["gcp_compute_stop_instance"]}}]})
    assert resource.get("web-1").policy.deny_tools == ["gcp_compute_stop_instance"]
