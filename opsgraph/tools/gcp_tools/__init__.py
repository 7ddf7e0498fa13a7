"""GCP tools: Compute Engine, Memorystore and Cloud SQL, through Google's own clients.

They are the lifecycle operations of the gcp environment. Every change waits for its
long-running operation (deadline and progress), returns what changed (before / after),
and has `dry_run`, which returns the exact REST request it would send and sends nothing.
Each tool's IAM permissions and least-privilege roles are in `permissions.PERMISSIONS`.
Results never hold credentials: the key file is read by google-auth only.
"""

from __future__ import annotations

from typing import Any

from opsgraph.tools.environments.gcp.permissions import PERMISSIONS, PROBE_PERMISSIONS
from opsgraph.tools.gcp_tools.cloudsql import (
    gcp_sql_info,
    gcp_sql_kill_long_queries,
    gcp_sql_restart_instance,
    gcp_sql_scale_tier,
)
from opsgraph.tools.gcp_tools.compute import (
    gcp_compute_describe,
    gcp_compute_resize,
    gcp_compute_restart_instance,
    gcp_compute_start_instance,
    gcp_compute_stop_instance,
)
from opsgraph.tools.gcp_tools.memorystore import (
    gcp_redis_flush,
    gcp_redis_info,
    gcp_redis_restart,
    gcp_redis_scale_memory,
)
from opsgraph.tools.spec import ToolSpec

__all__ = ["PERMISSIONS", "PROBE_PERMISSIONS", "TOOLS"]

TOOLS: list[ToolSpec[Any]] = [
    gcp_compute_describe,
    gcp_compute_restart_instance,
    gcp_compute_start_instance,
    gcp_compute_stop_instance,
    gcp_compute_resize,
    gcp_redis_info,
    gcp_redis_flush,
    gcp_redis_restart,
    gcp_redis_scale_memory,
    gcp_sql_info,
    gcp_sql_kill_long_queries,
    gcp_sql_restart_instance,
    gcp_sql_scale_tier,
]

if set(PERMISSIONS) != {spec.name for spec in TOOLS}:
    raise RuntimeError("every GCP tool declares its IAM permissions in environments.gcp.permissions, and only they do")
