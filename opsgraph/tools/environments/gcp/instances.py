"""An instance as a dict of the client library's field names (snake_case, enums by name).

Tools, probes and data fingerprints read the same dict (`status`, `machine_type`,
`memory_size_gb`, `settings.tier`...): the REST API's fields under the names the Python
clients and the tools' own arguments use. Fields left at their defaults are omitted, as
the REST API omits them.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.errors import Grant, google_call
from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.inventory import Resource

Json = dict[str, Any]


def as_json(message: Any) -> Json:
    """A proto-plus message as a dict: REST's fields and values, under the proto (snake_case) names."""
    return type(message).to_dict(  # type: ignore[no-any-return]
        message,
        preserving_proto_field_name=True,
        use_integers_for_enums=False,
        always_print_fields_with_no_presence=False,
    )


def memorystore_name(resource: Resource) -> str:
    """The instance's full name, as Memorystore's API and its metrics label it."""
    settings = resource.gcp_settings
    return f"projects/{settings.project}/locations/{settings.region}/instances/{settings.instance_name(resource.name)}"


def compute_instance(resource: Resource, grant: Grant) -> Json:
    settings = resource.gcp_settings
    with google_call(target_of(resource), grant):
        instance = clients.compute_instances(settings).get(
            project=settings.project,
            zone=settings.zone,
            instance=settings.instance_name(resource.name),
            timeout=clients.READ_TIMEOUT_S,
            retry=None,
        )
    return as_json(instance)


def redis_instance(resource: Resource, grant: Grant) -> Json:
    with google_call(target_of(resource), grant):
        instance = clients.memorystore(resource.gcp_settings).get_instance(
            name=memorystore_name(resource), timeout=clients.READ_TIMEOUT_S, retry=None
        )
    return as_json(instance)


def sql_instance(resource: Resource, grant: Grant) -> Json:
    from google.cloud.sqladmin_v1beta4 import SqlInstancesGetRequest

    settings = resource.gcp_settings
    request = SqlInstancesGetRequest(project=settings.project, instance=settings.instance_name(resource.name))
    with google_call(target_of(resource), grant):
        instance = clients.sql_instances(settings).get(request=request, timeout=clients.READ_TIMEOUT_S, retry=None)
    return as_json(instance)


def short_name(url: str | None) -> str | None:
    """The last segment of a resource URL: `.../machineTypes/e2-medium` -> `e2-medium`."""
    return None if url is None else url.rsplit("/", 1)[-1]


def has_local_ssd(instance: Json) -> bool:
    """Whether the VM has a local SSD (a SCRATCH disk), whose data does not survive a stop."""
    # compute_v1 names the proto field `type_` (REST's `type`): Python's `type` is taken.
    return any(disk.get("type_") == "SCRATCH" for disk in instance.get("disks", []))
