"""Which GCP instance a resource names, and how to say so in a message."""

from __future__ import annotations

from dataclasses import dataclass

from opsgraph.tools.inventory import Resource, ResourceKind

_SERVICES = {
    ResourceKind.GCP_COMPUTE: "Compute Engine instance",
    ResourceKind.GCP_REDIS: "Memorystore instance",
    ResourceKind.GCP_SQL: "Cloud SQL instance",
}


@dataclass(frozen=True)
class Target:
    """One instance in one project and zone or region (Cloud SQL: the region is optional)."""

    service: str
    name: str
    project: str
    location: str | None
    location_kind: str  # "zone" or "region"
    credentials: str  # what OpsGraph authenticates with, for 401 messages: never the key itself

    @property
    def where(self) -> str:
        place = f", {self.location_kind} {self.location}" if self.location else ""
        return f"project {self.project}{place}"

    def __str__(self) -> str:
        return f"{self.service} {self.name} in {self.where}"


def target_of(resource: Resource) -> Target:
    settings = resource.gcp_settings
    zonal = resource.kind is ResourceKind.GCP_COMPUTE
    key_file = settings.credentials_file
    return Target(
        service=_SERVICES[resource.kind],
        name=settings.instance_name(resource.name),
        project=settings.project,
        location=settings.zone if zonal else settings.region,
        location_kind="zone" if zonal else "region",
        credentials=f"the key file {key_file}" if key_file else "Application Default Credentials",
    )
