"""Cloud SQL for PostgreSQL tools: the instance through the Cloud SQL Admin API (v1beta4), its sessions
through its PostgreSQL (the data plane).

The data plane (`dataplane.postgres_data_plane`) runs postgres_info's and
postgres_kill_long_queries' own code, with their protections: a Cloud SQL instance's
`cloudsqlsuperuser` sessions and OpsGraph's own are never terminated.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from pydantic import Field

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.dataplane import postgres_data_plane
from opsgraph.tools.environments.gcp.errors import Grant, google_call
from opsgraph.tools.environments.gcp.instances import Json, sql_instance
from opsgraph.tools.environments.gcp.operations import Deadline, Waited, sql_poll, wait_for
from opsgraph.tools.environments.gcp.permissions import PERMISSIONS, PROBE_PERMISSIONS
from opsgraph.tools.environments.gcp.rest import client_host, rest_request
from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.gcp_tools.change import GcpChangeArgs, dry_run_answer
from opsgraph.tools.identity import server_identity
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.postgres_tools import PostgresInfoArgs, PostgresKillArgs, kill_long_queries, read_postgres_info
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolContext, ToolError, declare, outside_allowlist

# A restart takes a minute or two; a tier change restarts the instance on new hardware.
_MAX_WAIT_S = 1200.0


def sql_facts(instance: Json) -> dict[str, Any]:
    settings = instance.get("settings", {})
    return {"state": instance.get("state"), "tier": settings.get("tier")}


def data_plane(resource: Resource, grant: Grant) -> Resource:
    """The instance's PostgreSQL; the API is asked for its address only when the inventory gives none."""
    return postgres_data_plane(resource, None if resource.connection.port else sql_instance(resource, grant))


def sql_observation(resource: Resource, ctx: ToolContext) -> str | None:
    """When the instance's PostgreSQL started: a restart that happened changes it."""
    try:
        plane = data_plane(resource, PROBE_PERMISSIONS[ResourceKind.GCP_SQL])
    except ToolError:
        return None
    return server_identity(plane, ctx)


def _described(resource: Resource, method: str, request: Any) -> dict[str, Any]:
    from google.cloud.sqladmin_v1beta4.services.sql_instances_service.transports.rest_base import (
        _BaseSqlInstancesServiceRestTransport,
    )

    base = getattr(_BaseSqlInstancesServiceRestTransport, f"_Base{method.title()}")
    host = client_host(clients.sql_instances(resource.gcp_settings))
    return rest_request(base._get_http_options(), request, host)


def _change(resource: Resource, grant: Grant, method: str, request: Any) -> Waited:
    """Send one Cloud SQL Admin change and wait for its sql#operation."""
    settings = resource.gcp_settings
    target = target_of(resource)
    with google_call(target, grant):
        operation = getattr(clients.sql_instances(settings), method)(
            request=request, timeout=clients.CALL_TIMEOUT_S, retry=None
        )
    poll = sql_poll(settings, target, grant, operation.name)
    return wait_for(operation.name, target, poll, Deadline(resource.gcp_settings, _MAX_WAIT_S))


@declare(risk=Risk.READ, target=ResourceKind.GCP_SQL, idempotent=True)
def gcp_sql_info(args: PostgresInfoArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read a Cloud SQL instance (under "instance": state, tier, flags, addresses) and its PostgreSQL's
    connections, long-running and blocked queries and locks as postgres_info reports them."""
    resource = ctx.resource(args.resource)
    instance = sql_instance(resource, PERMISSIONS["gcp_sql_info"])
    plane = postgres_data_plane(resource, instance)
    try:
        info = read_postgres_info(plane, args)
    except (ToolError, psycopg.Error) as error:
        return {"instance": instance, "data_plane_error": str(error).strip()}
    return {"instance": instance, **info}


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.GCP_SQL, idempotent=True)
def gcp_sql_kill_long_queries(args: PostgresKillArgs, ctx: ToolContext) -> dict[str, Any]:
    """Terminate a Cloud SQL instance's PostgreSQL sessions matching filters, as postgres_kill_long_queries
    does (same filters, same protections: never superuser or OpsGraph sessions)."""
    resource = ctx.resource(args.resource)
    return kill_long_queries(data_plane(resource, PERMISSIONS["gcp_sql_kill_long_queries"]), args)


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.GCP_SQL, idempotent=False, observe=sql_observation)
def gcp_sql_restart_instance(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Restart a Cloud SQL instance (every session drops, in-flight transactions roll back) and wait for it."""
    from google.cloud.sqladmin_v1beta4 import SqlInstancesRestartRequest

    resource = ctx.resource(args.resource)
    grant = PERMISSIONS["gcp_sql_restart_instance"]
    settings = resource.gcp_settings
    before = sql_instance(resource, grant)
    request = SqlInstancesRestartRequest(project=settings.project, instance=settings.instance_name(resource.name))
    if args.dry_run:
        return dry_run_answer(_described(resource, "restart", request), before=sql_facts(before))
    waited = _change(resource, grant, "restart", request)
    after = sql_instance(resource, grant)
    return {"operation": waited.as_dict(), "before": sql_facts(before), "after": sql_facts(after)}


class GcpSqlScaleTierArgs(GcpChangeArgs):
    tier: Annotated[
        str, Field(pattern=r"^db-[a-z0-9-]{1,60}$", description="The new machine tier, e.g. db-custom-2-7680")
    ]


def _tier_allowed(args: GcpSqlScaleTierArgs, resource: Resource) -> str | None:
    return outside_allowlist("tier", args.tier, resource.policy.sql_tiers, "sql_tiers")


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.GCP_SQL,
    idempotent=True,
    check_limits=_tier_allowed,
    undo="gcp_sql_scale_tier with tier = before.tier from the result",
)
def gcp_sql_scale_tier(args: GcpSqlScaleTierArgs, ctx: ToolContext) -> dict[str, Any]:
    """Change a Cloud SQL instance's machine tier (one of policy.sql_tiers) and wait; the instance restarts
    and every session drops."""
    from google.cloud.sqladmin_v1beta4 import DatabaseInstance, Settings, SqlInstancesPatchRequest

    resource = ctx.resource(args.resource)
    if (refusal := _tier_allowed(args, resource)) is not None:
        raise ToolError(refusal)
    grant = PERMISSIONS["gcp_sql_scale_tier"]
    settings = resource.gcp_settings
    before = sql_instance(resource, grant)
    if sql_facts(before)["tier"] == args.tier:
        return {"changed": False, "before": sql_facts(before), "after": sql_facts(before)}
    request = SqlInstancesPatchRequest(
        project=settings.project,
        instance=settings.instance_name(resource.name),
        body=DatabaseInstance(settings=Settings(tier=args.tier)),
    )
    if args.dry_run:
        return dry_run_answer(_described(resource, "patch", request), before=sql_facts(before))
    waited = _change(resource, grant, "patch", request)
    after = sql_instance(resource, grant)
    return {"changed": True, "operation": waited.as_dict(), "before": sql_facts(before), "after": sql_facts(after)}
