"""A local EMULATOR of the GCP APIs OpsGraph drives — never Google itself — for tests and the demo.

It speaks the real wire formats that Google's own client libraries send and parse:
Compute Engine v1 (REST), Memorystore for Redis v1 (REST), Cloud SQL Admin v1beta4
(REST), Cloud Monitoring v3 `MetricService.ListTimeSeries` (gRPC), and the OAuth2
JWT-bearer token endpoint that google-auth's service-account credentials use. Its
access tokens say so ("emulator-…"). Memorystore and Cloud SQL instances sit in front
of REAL local servers (redis-server, PostgreSQL): the emulator plays the control plane
and performs on them what Google's would (CONFIG SET maxmemory on a resize, terminating
client sessions on a restart). It is its own layer: it imports nothing from opsgraph.

    with GcpEmulator(EmulatorConfig(...), folder) as emu:
        key = emu.key_file("opsgraph-sa", frozenset({"*"}))
        client = compute_v1.InstancesClient(
            credentials=service_account.Credentials.from_service_account_file(key, scopes=[...]),
            client_options={"api_endpoint": emu.api_endpoint}, transport="rest")

`python -m opsgraph.gcp_emulator --config FILE.yaml --folder DIR [--port N]` runs it in
the foreground and prints one JSON line: {"emulator", "project", "api_endpoint",
"monitoring_endpoint", "key_file"}.

Admin routes (JSON, no auth, 127.0.0.1 only), on `api_endpoint`:

    GET  /emulator                                    project and endpoints
    GET  /emulator/tokens                             {"tokens": [...]}: every bearer credential seen
    GET  /emulator/requests                           {"requests": [{method, path, permission, status, principal}]}
    GET  /emulator/{compute|redis|sql}/{name}         the instance's current JSON, as its API returns it
    GET  /emulator/compute/{project}/{zone}/{name}/guest  {"status", "memory_used_pct", "cpu_used_pct"} now
    POST /emulator/compute/{project}/{zone}/{name}/guest  {"memory_used_pct": 97, "cpu_used_pct": 80}
    POST /emulator/sql/{project}/{name}/metrics       {"cpu_utilization": 0.9, "disk_utilization": 0.95}
    POST /emulator/fail_next                          {"permission": "compute.instances.reset", "status": 429,
                                                       "count": 1, "message": null}
    POST /emulator/keys                               {"name": "reader-sa", "permissions": ["compute.instances.get"]}
                                                      -> {"key_file": PATH}

Errors answer 400 (bad body) or 404 (no such route or instance) with {"error": "..."}.
"""

from opsgraph.gcp_emulator.config import ComputeInstanceSpec, EmulatorConfig, RedisInstanceSpec, SqlInstanceSpec
from opsgraph.gcp_emulator.emulator import GcpEmulator
from opsgraph.gcp_emulator.errors import BackendError
from opsgraph.gcp_emulator.gate import EmulatorRequest

__all__ = [
    "BackendError",
    "ComputeInstanceSpec",
    "EmulatorConfig",
    "EmulatorRequest",
    "GcpEmulator",
    "RedisInstanceSpec",
    "SqlInstanceSpec",
]
