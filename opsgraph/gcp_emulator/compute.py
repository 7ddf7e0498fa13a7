"""Emulated Compute Engine (`/compute/v1/…`): instances get/list/reset/start/stop/setMachineType, zone operations.

A VM is state only (no guest runs); its guest metrics are what the Ops Agent would
report and can be pushed around with `set_guest`. Status transitions follow Google's:
stop -> STOPPING, then TERMINATED when its operation is DONE; start -> STAGING, then
RUNNING; reset keeps RUNNING and, when DONE, stamps lastStartTimestamp and brings the
guest back to its baseline; setMachineType is refused unless the VM is TERMINATED.
Links (selfLink, zone, machineType, targetLink) point at the emulator's own base URL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsgraph.gcp_emulator.config import ComputeInstanceSpec
from opsgraph.gcp_emulator.errors import ApiError, not_found, operation_in_progress
from opsgraph.gcp_emulator.gate import Call, Route
from opsgraph.gcp_emulator.metrics import Series
from opsgraph.gcp_emulator.operations import Operation, OperationBook, utc_now

_INSTANCE = "/compute/v1/projects/{project}/zones/{zone}/instances/{instance}"
_RESOURCE = "projects/{project}/zones/{zone}/instances/{instance}"
_WAIT_S = 120.0  # zoneOperations.wait returns after at most about two minutes, DONE or not


def _timestamp(moment: datetime) -> str:
    """Compute Engine's RFC 3339 text with milliseconds and a numeric offset."""
    return moment.isoformat(timespec="milliseconds")


def stable_id(*parts: str) -> str:
    """A numeric resource id that stays the same for the same resource across runs."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 1)


@dataclass
class _Vm:
    spec: ComputeInstanceSpec
    id: str
    status: str
    machine_type: str
    created: str
    last_start: str
    last_stop: str | None
    memory_used_pct: float
    cpu_used_pct: float

    def back_to_baseline(self) -> None:
        self.memory_used_pct = self.spec.memory_used_pct
        self.cpu_used_pct = self.spec.cpu_used_pct


class ComputeEngine:
    """The VMs of one project and their zone operations."""

    def __init__(self, project: str, specs: list[ComputeInstanceSpec], lock: threading.RLock, delay_s: float) -> None:
        self.project = project
        self.base_url = ""  # set once the REST server is bound
        self._lock = lock
        self._book = OperationBook(lock, delay_s)
        now = _timestamp(utc_now())
        self._vms: dict[tuple[str, str], _Vm] = {
            (spec.zone, spec.name): _Vm(
                spec=spec,
                id=stable_id(project, spec.zone, spec.name),
                status=spec.status,
                machine_type=spec.machine_type,
                created=now,
                last_start=now,
                last_stop=None,
                memory_used_pct=spec.memory_used_pct,
                cpu_used_pct=spec.cpu_used_pct,
            )
            for spec in specs
        }

    def routes(self) -> list[Route]:
        ops = "/compute/v1/projects/{project}/zones/{zone}/operations/{operation}"
        op_resource = "projects/{project}/zones/{zone}/operations/{operation}"
        return [
            Route("GET", _INSTANCE, "compute.instances.get", "compute.instances.get", _RESOURCE, self._get),
            Route(
                "GET", "/compute/v1/projects/{project}/zones/{zone}/instances", "compute.instances.list",
                "compute.instances.list", "projects/{project}/zones/{zone}", self._list,
            ),
            Route("POST", _INSTANCE + "/reset", "compute.instances.reset", "compute.instances.reset", _RESOURCE,
                  self._reset),
            Route("POST", _INSTANCE + "/start", "compute.instances.start", "compute.instances.start", _RESOURCE,
                  self._start),
            Route("POST", _INSTANCE + "/stop", "compute.instances.stop", "compute.instances.stop", _RESOURCE,
                  self._stop),
            Route(
                "POST", _INSTANCE + "/setMachineType", "compute.instances.setMachineType",
                "compute.instances.setMachineType", _RESOURCE, self._set_machine_type,
            ),
            Route("GET", ops, "compute.zoneOperations.get", "compute.zoneOperations.get", op_resource,
                  self._get_operation),
            Route("POST", ops + "/wait", "compute.zoneOperations.wait", "compute.zoneOperations.get", op_resource,
                  self._wait_operation),
        ]  # fmt: skip

    # ---- admin

    def set_guest(self, zone: str, name: str, memory_used_pct: float | None, cpu_used_pct: float | None) -> None:
        for value in (memory_used_pct, cpu_used_pct):
            if value is not None and not 0 <= value <= 100:
                raise ValueError("guest metrics are percentages, 0..100")
        with self._lock:
            vm = self._vms.get((zone, name))
            if vm is None:
                raise KeyError(f"no emulated compute instance {name!r} in zone {zone}")
            if memory_used_pct is not None:
                vm.memory_used_pct = memory_used_pct
            if cpu_used_pct is not None:
                vm.cpu_used_pct = cpu_used_pct

    def guest(self, zone: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._book.settle()
            vm = self._vms.get((zone, name))
            if vm is None:
                raise KeyError(f"no emulated compute instance {name!r} in zone {zone}")
            return {"status": vm.status, "memory_used_pct": vm.memory_used_pct, "cpu_used_pct": vm.cpu_used_pct}

    def instance(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            self._book.settle()
            vm = next((vm for (_, vm_name), vm in self._vms.items() if vm_name == name), None)
            return None if vm is None else self._render(vm)

    def close(self) -> None:
        self._book.close()

    def series(self, metric_type: str) -> list[Series]:
        """Guest metrics of the RUNNING VMs (a stopped VM reports nothing)."""
        with self._lock:
            self._book.settle()
            running = [vm for vm in self._vms.values() if vm.status == "RUNNING"]
            resource = [{"project_id": self.project, "instance_id": vm.id, "zone": vm.spec.zone} for vm in running]
            if metric_type == "compute.googleapis.com/instance/cpu/utilization":
                return [
                    Series(metric_type, {"instance_name": vm.spec.name}, "gce_instance", labels, vm.cpu_used_pct / 100)
                    for vm, labels in zip(running, resource, strict=True)
                ]
            if metric_type == "agent.googleapis.com/memory/percent_used":
                return [
                    Series(metric_type, {"state": "used"}, "gce_instance", labels, vm.memory_used_pct)
                    for vm, labels in zip(running, resource, strict=True)
                ]
            return []

    # ---- handlers (called under the lock)

    def _vm(self, params: dict[str, str]) -> _Vm:
        vm = self._vms.get((params["zone"], params["instance"])) if params["project"] == self.project else None
        if vm is None:
            raise not_found(_RESOURCE.format(**params))
        return vm

    def _get(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        return self._render(self._vm(call.params))

    def _list(self, call: Call) -> dict[str, Any]:
        self._book.settle()
        zone = call.params["zone"]
        items = [self._render(vm) for (vm_zone, _), vm in sorted(self._vms.items()) if vm_zone == zone]
        listing: dict[str, Any] = {
            "kind": "compute#instanceList",
            "id": f"projects/{self.project}/zones/{zone}/instances",
            "selfLink": f"{self._zone_url(zone)}/instances",
        }
        if items:
            listing["items"] = items
        return listing

    def _reset(self, call: Call) -> dict[str, Any]:
        vm = self._idle_vm(call)
        if vm.status != "RUNNING":
            raise _not_ready(call)

        def done() -> None:
            vm.last_start = _timestamp(utc_now())
            vm.back_to_baseline()

        return self._operate(call, "reset", done)

    def _start(self, call: Call) -> dict[str, Any]:
        vm = self._idle_vm(call)
        if vm.status == "RUNNING":
            return self._operate(call, "start", lambda: None)
        vm.status = "STAGING"

        def done() -> None:
            vm.status = "RUNNING"
            vm.last_start = _timestamp(utc_now())
            vm.back_to_baseline()

        return self._operate(call, "start", done)

    def _stop(self, call: Call) -> dict[str, Any]:
        vm = self._idle_vm(call)
        if vm.spec.local_ssd and "discardLocalSsd" not in call.query:
            raise ApiError(
                400,
                "VM has a Local SSD attached but an undefined value for `discard-local-ssd`. "
                "Set discardLocalSsd=false to preserve the Local SSD data or discardLocalSsd=true to discard it.",
                legacy_reason="badRequest",
            )
        if vm.status == "TERMINATED":
            return self._operate(call, "stop", lambda: None)
        vm.status = "STOPPING"

        def done() -> None:
            vm.status = "TERMINATED"
            vm.last_stop = _timestamp(utc_now())

        return self._operate(call, "stop", done)

    def _set_machine_type(self, call: Call) -> dict[str, Any]:
        vm = self._idle_vm(call)
        requested = str(call.body.get("machineType", ""))
        machine_type = requested.rstrip("/").rsplit("/", 1)[-1]
        if not machine_type:
            raise ApiError(400, "Invalid value for field 'resource.machineType': ''. A machine type is required.")
        if vm.status != "TERMINATED":
            raise ApiError(
                400,
                f"Invalid resource usage: 'Instance '{vm.spec.name}' is {vm.status}: "
                "its machine type can be changed only while it is stopped (TERMINATED).'",
                status="FAILED_PRECONDITION",
                legacy_reason="resourceNotReady",
            )

        def done() -> None:
            vm.machine_type = machine_type

        return self._operate(call, "setMachineType", done)

    def _get_operation(self, call: Call) -> dict[str, Any]:
        return self._render_operation(self._operation(call))

    def _wait_operation(self, call: Call) -> dict[str, Any]:
        operation = self._book.wait(self._operation(call).name, _WAIT_S)
        assert operation is not None  # found just before; operations are never deleted
        return self._render_operation(operation)

    # ---- helpers

    def _idle_vm(self, call: Call) -> _Vm:
        vm = self._vm(call.params)
        running = self._book.in_progress(_RESOURCE.format(**call.params))
        if running is not None:
            raise operation_in_progress(_RESOURCE.format(**call.params), running.name)
        return vm

    def _operate(self, call: Call, verb: str, done: Callable[[], None]) -> dict[str, Any]:
        operation = self._book.begin(verb, _RESOURCE.format(**call.params), call.principal.email, done)
        return self._render_operation(operation)

    def _operation(self, call: Call) -> Operation:
        operation = self._book.get(call.params["operation"])
        zone_prefix = f"projects/{self.project}/zones/{call.params['zone']}/"
        if operation is None or call.params["project"] != self.project or not operation.target.startswith(zone_prefix):
            raise not_found(f"projects/{call.params['project']}/zones/{call.params['zone']}/operations/"
                            f"{call.params['operation']}")  # fmt: skip
        return operation

    def _zone_url(self, zone: str) -> str:
        return f"{self.base_url}/compute/v1/projects/{self.project}/zones/{zone}"

    def _render(self, vm: _Vm) -> dict[str, Any]:
        zone_url = self._zone_url(vm.spec.zone)
        disks: list[dict[str, Any]] = [
            {
                "kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE", "index": 0,
                "boot": True, "autoDelete": True, "interface": "SCSI", "deviceName": vm.spec.name,
                "diskSizeGb": "10", "source": f"{zone_url}/disks/{vm.spec.name}",
            }
        ]  # fmt: skip
        if vm.spec.local_ssd:
            disks.append({
                "kind": "compute#attachedDisk", "type": "SCRATCH", "mode": "READ_WRITE", "index": 1,
                "boot": False, "autoDelete": True, "interface": "NVME", "deviceName": "local-ssd-0",
                "diskSizeGb": "375",
            })  # fmt: skip
        rendered: dict[str, Any] = {
            "kind": "compute#instance",
            "id": vm.id,
            "name": vm.spec.name,
            "zone": zone_url,
            "machineType": f"{zone_url}/machineTypes/{vm.machine_type}",
            "status": vm.status,
            "creationTimestamp": vm.created,
            "lastStartTimestamp": vm.last_start,
            "disks": disks,
            "selfLink": f"{zone_url}/instances/{vm.spec.name}",
        }
        if vm.last_stop is not None:
            rendered["lastStopTimestamp"] = vm.last_stop
        return rendered

    def _render_operation(self, operation: Operation) -> dict[str, Any]:
        zone = operation.target.split("/")[3]
        zone_url = self._zone_url(zone)
        name = operation.target.rsplit("/", 1)[-1]
        phase = operation.phase()
        rendered: dict[str, Any] = {
            "kind": "compute#operation",
            "id": operation.numeric_id,
            "name": operation.name,
            "zone": zone_url,
            "operationType": operation.verb,
            "targetLink": f"{zone_url}/instances/{name}",
            "targetId": self._vms[(zone, name)].id,
            "status": phase,
            "user": operation.user,
            "progress": {"PENDING": 0, "RUNNING": 50, "DONE": 100}[phase],
            "insertTime": _timestamp(operation.inserted),
            "selfLink": f"{zone_url}/operations/{operation.name}",
        }
        if phase != "PENDING":
            rendered["startTime"] = _timestamp(operation.inserted)
        if operation.finished is not None:
            rendered["endTime"] = _timestamp(operation.finished)
        if operation.error is not None:
            rendered["httpErrorStatusCode"] = operation.error.code
            rendered["httpErrorMessage"] = operation.error.status
            rendered["error"] = {
                "errors": [{"code": operation.error.legacy_reason, "message": operation.error.message}]
            }
        return rendered


def _not_ready(call: Call) -> ApiError:
    return ApiError(
        400,
        f"The resource '{_RESOURCE.format(**call.params)}' is not ready",
        status="FAILED_PRECONDITION",
        legacy_reason="resourceNotReady",
    )
