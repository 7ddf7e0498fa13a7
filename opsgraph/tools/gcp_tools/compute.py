"""Compute Engine tools: describe, reset, start, stop and resize a VM, through the Compute Engine API.

Each change is a zone operation that the tool waits for (deadline and progress: see
`operations`), then reads the instance again and returns what changed. A VM with a local
SSD is never stopped: Compute Engine discards a local SSD's data when its VM stops.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from opsgraph.tools.environments.gcp import clients
from opsgraph.tools.environments.gcp.errors import GcpApiError, Grant, google_call
from opsgraph.tools.environments.gcp.instances import Json, compute_instance, has_local_ssd, short_name
from opsgraph.tools.environments.gcp.monitoring import guest_metrics
from opsgraph.tools.environments.gcp.operations import Deadline, Waited, compute_poll, wait_for
from opsgraph.tools.environments.gcp.permissions import PERMISSIONS, PROBE_PERMISSIONS
from opsgraph.tools.environments.gcp.rest import client_host, rest_request
from opsgraph.tools.environments.gcp.target import target_of
from opsgraph.tools.gcp_tools.change import GcpChangeArgs, dry_run_answer
from opsgraph.tools.inventory import Resource, ResourceKind
from opsgraph.tools.risk import Risk
from opsgraph.tools.spec import ToolArgs, ToolContext, ToolError, declare, outside_allowlist

# A VM reset, start or stop takes seconds to a couple of minutes; a resize is three of them.
_MAX_WAIT_S = 600.0
_STOPPED = ("TERMINATED", "STOPPED")


def vm_facts(instance: Json) -> dict[str, Any]:
    """What a change is judged by: status, machine type, when it last started and stopped."""
    return {
        "status": instance.get("status"),
        "machine_type": short_name(instance.get("machine_type")),
        "last_start_timestamp": instance.get("last_start_timestamp"),
        "last_stop_timestamp": instance.get("last_stop_timestamp"),
    }


def compute_observation(resource: Resource, ctx: ToolContext) -> str | None:
    """The VM's identity and its last start and stop: a reset, start or stop that happened changes it."""
    try:
        instance = compute_instance(resource, PROBE_PERMISSIONS[ResourceKind.GCP_COMPUTE])
    except GcpApiError:
        return None
    return (
        f"id {instance.get('id')}, started {instance.get('last_start_timestamp')}, "
        f"stopped {instance.get('last_stop_timestamp')}"
    )


def _request(resource: Resource, method: str, **body: Any) -> Any:
    """The client library's request message for an Instances method (reset, start, stop, set_machine_type)."""
    from google.cloud import compute_v1

    settings = resource.gcp_settings
    where = {"project": settings.project, "zone": settings.zone, "instance": settings.instance_name(resource.name)}
    if method == "set_machine_type":
        machine_type = f"zones/{settings.zone}/machineTypes/{body['machine_type']}"
        resource_body = compute_v1.InstancesSetMachineTypeRequest(machine_type=machine_type)
        return compute_v1.SetMachineTypeInstanceRequest(
            **where, instances_set_machine_type_request_resource=resource_body
        )
    message = {"reset": "ResetInstanceRequest", "start": "StartInstanceRequest", "stop": "StopInstanceRequest"}[method]
    return getattr(compute_v1, message)(**where)


def _described(resource: Resource, method: str, request: Any) -> dict[str, Any]:
    """The REST request `method` would send."""
    from google.cloud.compute_v1.services.instances.transports.rest_base import _BaseInstancesRestTransport

    base = getattr(_BaseInstancesRestTransport, "_Base" + "".join(part.title() for part in method.split("_")))
    host = client_host(clients.compute_instances(resource.gcp_settings))
    return rest_request(base._get_http_options(), request, host)


def _change(resource: Resource, grant: Grant, method: str, request: Any, deadline: Deadline) -> Waited:
    """Send one Instances change and wait for its zone operation."""
    settings = resource.gcp_settings
    target = target_of(resource)
    client = clients.compute_instances(settings)
    with google_call(target, grant):
        operation = getattr(client, method)(request=request, timeout=clients.CALL_TIMEOUT_S, retry=None)
    poll = compute_poll(settings, target, grant, operation.name)
    return wait_for(operation.name, target, poll, deadline)


def _simple_change(
    args: GcpChangeArgs, ctx: ToolContext, tool: str, method: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    """Reset, start or stop: refuse from the wrong status, else send it (or describe it) and wait."""
    resource = ctx.resource(args.resource)
    grant = PERMISSIONS[tool]
    before = compute_instance(resource, grant)
    status = before.get("status")
    if status not in allowed:
        raise ToolError(f"{target_of(resource)} is {status}; {tool} acts on an instance that is {' or '.join(allowed)}")
    if method == "stop" and has_local_ssd(before):
        raise ToolError(f"{target_of(resource)} has a local SSD, whose data is lost when the VM stops; refusing")
    request = _request(resource, method)
    if args.dry_run:
        return dry_run_answer(_described(resource, method, request), before=vm_facts(before))
    waited = _change(resource, grant, method, request, Deadline(resource.gcp_settings, _MAX_WAIT_S))
    after = compute_instance(resource, grant)
    return {"operation": waited.as_dict(), "before": vm_facts(before), "after": vm_facts(after)}


@declare(risk=Risk.READ, target=ResourceKind.GCP_COMPUTE, idempotent=True)
def gcp_compute_describe(args: ToolArgs, ctx: ToolContext) -> dict[str, Any]:
    """Read a Compute Engine VM: status, machine type, disks, last start/stop, and its CPU and memory use
    from Cloud Monitoring (None: no data)."""
    resource = ctx.resource(args.resource)
    grant = PERMISSIONS["gcp_compute_describe"]
    instance = compute_instance(resource, grant)
    running = instance.get("status") == "RUNNING"
    metrics = guest_metrics(resource, instance, grant) if running else {"cpu_used_pct": None, "memory_used_pct": None}
    return {
        "instance": instance,
        **vm_facts(instance),
        "local_ssd": has_local_ssd(instance),
        **metrics,
    }


@declare(risk=Risk.DISRUPTIVE, target=ResourceKind.GCP_COMPUTE, idempotent=False, observe=compute_observation)
def gcp_compute_restart_instance(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Reset a running Compute Engine VM (a hard reset: the guest reboots at once, its memory is lost,
    its disks are kept) and wait for it.

    Compute Engine's `reset`: no guest shutdown, like pressing a machine's reset button.
    """
    return _simple_change(args, ctx, "gcp_compute_restart_instance", "reset", ("RUNNING",))


@declare(
    risk=Risk.DISRUPTIVE,
    target=ResourceKind.GCP_COMPUTE,
    idempotent=False,
    observe=compute_observation,
    undo="gcp_compute_stop_instance",
)
def gcp_compute_start_instance(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Start a stopped (TERMINATED) Compute Engine VM and wait until it runs; refused for any other status."""
    return _simple_change(args, ctx, "gcp_compute_start_instance", "start", _STOPPED)


@declare(
    risk=Risk.DESTRUCTIVE,
    target=ResourceKind.GCP_COMPUTE,
    idempotent=False,
    observe=compute_observation,
    undo="gcp_compute_start_instance",
)
def gcp_compute_stop_instance(args: GcpChangeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Stop a running Compute Engine VM and wait until it is TERMINATED; refused for a VM with a local SSD
    (its data would be lost).

    Destructive: what runs on the VM stops serving until someone starts it again.
    """
    return _simple_change(args, ctx, "gcp_compute_stop_instance", "stop", ("RUNNING",))


class GcpComputeResizeArgs(GcpChangeArgs):
    machine_type: Annotated[
        str,
        Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="The new machine type, e.g. e2-standard-4"),
    ]


def _machine_type_allowed(args: GcpComputeResizeArgs, resource: Resource) -> str | None:
    return outside_allowlist("machine type", args.machine_type, resource.policy.machine_types, "machine_types")


@declare(
    risk=Risk.DESTRUCTIVE,
    target=ResourceKind.GCP_COMPUTE,
    idempotent=True,
    check_limits=_machine_type_allowed,
    undo="gcp_compute_resize with machine_type = before.machine_type from the result",
)
def gcp_compute_resize(args: GcpComputeResizeArgs, ctx: ToolContext) -> dict[str, Any]:
    """Change a Compute Engine VM's machine type (one of policy.machine_types): stop it, set the type, start it
    again if it was running; refused for a VM with a local SSD.

    Compute Engine changes a machine type only while the VM is stopped, so a running VM is
    down for the stop and the start. If setting the type fails after the stop, the VM is
    started again with its old type.
    """
    resource = ctx.resource(args.resource)
    if (refusal := _machine_type_allowed(args, resource)) is not None:
        raise ToolError(refusal)
    grant = PERMISSIONS["gcp_compute_resize"]
    before = compute_instance(resource, grant)
    target = target_of(resource)
    status = before.get("status")
    if short_name(before.get("machine_type")) == args.machine_type:
        return {"changed": False, "before": vm_facts(before), "after": vm_facts(before)}
    if status not in ("RUNNING", *_STOPPED):
        raise ToolError(f"{target} is {status}; a resize needs it RUNNING or TERMINATED")
    if has_local_ssd(before):
        raise ToolError(f"{target} has a local SSD, whose data is lost when the VM stops for a resize; refusing")
    running = status == "RUNNING"
    steps = [
        *(["stop"] if running else []),
        "set_machine_type",
        *(["start"] if running else []),
    ]
    requests = {step: _request(resource, step, machine_type=args.machine_type) for step in steps}
    if args.dry_run:
        described = [_described(resource, step, requests[step]) for step in steps]
        return dry_run_answer(
            _described(resource, "set_machine_type", requests["set_machine_type"]),
            requests=described,
            before=vm_facts(before),
        )
    deadline = Deadline(resource.gcp_settings, _MAX_WAIT_S)
    operations: list[dict[str, Any]] = []
    for step in steps:
        try:
            operations.append(_change(resource, grant, step, requests[step], deadline).as_dict())
        except ToolError as error:
            if step != "set_machine_type" or not running:
                raise
            raise ToolError(f"setting the machine type failed ({error}); {_start_again(resource, grant)}") from None
    after = compute_instance(resource, grant)
    return {"changed": True, "operations": operations, "before": vm_facts(before), "after": vm_facts(after)}


def _start_again(resource: Resource, grant: Grant) -> str:
    """After a failed resize of a VM that was running: start it again with its old type."""
    try:
        _change(resource, grant, "start", _request(resource, "start"), Deadline(resource.gcp_settings, _MAX_WAIT_S))
    except ToolError as error:
        return f"starting it again with its old machine type failed too ({error}): it is stopped"
    return "it was started again with its old machine type"
