"""The IAM permissions each GCP tool and probe needs, and the least-privilege predefined roles that grant them.

One table, read three ways: a 403 names the missing permission and its role from it, the
README's table is generated from it, and an operator grants OpsGraph's service account
exactly these roles. Reads are in the viewer roles; changes need the instance-admin /
editor role of their service (never an owner or a project-wide editor).
"""

from __future__ import annotations

from opsgraph.tools.environments.gcp.errors import Grant
from opsgraph.tools.inventory import ResourceKind

_COMPUTE_VIEWER = "roles/compute.viewer"
_COMPUTE_ADMIN = "roles/compute.instanceAdmin.v1"
_MONITORING_VIEWER = "roles/monitoring.viewer"
_REDIS_VIEWER = "roles/redis.viewer"
_REDIS_EDITOR = "roles/redis.editor"
_SQL_VIEWER = "roles/cloudsql.viewer"
_SQL_EDITOR = "roles/cloudsql.editor"

_METRICS = "monitoring.timeSeries.list"
_VM_GET = "compute.instances.get"
_VM_OPERATION = "compute.zoneOperations.get"


def _vm_change(*permissions: str) -> Grant:
    return Grant((_VM_GET, *permissions, _VM_OPERATION), (_COMPUTE_ADMIN,))


PERMISSIONS: dict[str, Grant] = {
    "gcp_compute_describe": Grant((_VM_GET, _METRICS), (_COMPUTE_VIEWER, _MONITORING_VIEWER)),
    "gcp_compute_restart_instance": _vm_change("compute.instances.reset"),
    "gcp_compute_start_instance": _vm_change("compute.instances.start"),
    "gcp_compute_stop_instance": _vm_change("compute.instances.stop"),
    "gcp_compute_resize": _vm_change(
        "compute.instances.stop", "compute.instances.setMachineType", "compute.instances.start"
    ),
    "gcp_redis_info": Grant(("redis.instances.get",), (_REDIS_VIEWER,)),
    "gcp_redis_flush": Grant(("redis.instances.get",), (_REDIS_VIEWER,)),
    "gcp_redis_restart": Grant(
        ("redis.instances.get", "redis.instances.failover", "redis.operations.get"), (_REDIS_EDITOR,)
    ),
    "gcp_redis_scale_memory": Grant(
        ("redis.instances.get", "redis.instances.update", "redis.operations.get"), (_REDIS_EDITOR,)
    ),
    "gcp_sql_info": Grant(("cloudsql.instances.get",), (_SQL_VIEWER,)),
    "gcp_sql_kill_long_queries": Grant(("cloudsql.instances.get",), (_SQL_VIEWER,)),
    # Cloud SQL reads its operations with cloudsql.instances.get.
    "gcp_sql_restart_instance": Grant(("cloudsql.instances.get", "cloudsql.instances.restart"), (_SQL_EDITOR,)),
    "gcp_sql_scale_tier": Grant(("cloudsql.instances.get", "cloudsql.instances.update"), (_SQL_EDITOR,)),
}

# What a probe (and a data fingerprint) reads: the instance and its metrics.
PROBE_PERMISSIONS: dict[ResourceKind, Grant] = {
    ResourceKind.GCP_COMPUTE: Grant((_VM_GET, _METRICS), (_COMPUTE_VIEWER, _MONITORING_VIEWER)),
    ResourceKind.GCP_REDIS: Grant(("redis.instances.get", _METRICS), (_REDIS_VIEWER, _MONITORING_VIEWER)),
    ResourceKind.GCP_SQL: Grant(("cloudsql.instances.get", _METRICS), (_SQL_VIEWER, _MONITORING_VIEWER)),
}
