"""Config model of the Network stack: the VPC's address block, zones, NAT gateways and flow logs."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from stacks.config.base import StrictModel, check_log_retention, duplicates, raise_if_any


class NetworkConfig(StrictModel):
    """The VPC: public subnets for load balancers and NAT, private subnets for nodes and pods."""

    vpc_cidr: str = Field("10.0.0.0/16", description="IPv4 CIDR of the VPC, a /16 to /20.")
    az_count: int = Field(3, ge=2, le=6, description="Number of Availability Zones the VPC spans.")
    availability_zones: list[str] | None = Field(
        None,
        description="Explicit AZ names (needs `region`); omitted = the region's first `az_count` AZs at deploy time.",
    )
    nat_gateways: int = Field(
        le=6,
        json_schema_extra={"minimum": 1},
        description="NAT gateways: 1 for a cheap dev VPC, one per AZ for production. At least 1: nodes pull images "
        "from internet registries through NAT (docs/images.md).",
    )
    flow_log_retention_days: int = Field(90, description="Retention of the VPC flow logs in CloudWatch Logs.")

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr_is_a_usable_block(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as error:
            raise ValueError(f"{value!r} is not an IPv4 network in CIDR notation ({error})") from None
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"{value!r} must be a /16 to /20 block, to leave room for pod IPs")
        return value

    @field_validator("nat_gateways")
    @classmethod
    def _internet_registries_are_reachable(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                f"{value} leaves the nodes no way to the internet registries they pull from (public.ecr.aws, "
                "registry.k8s.io, ghcr.io, nvcr.io; see docs/images.md): at least 1"
            )
        return value

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention_is_supported(cls, value: int) -> int:
        return check_log_retention(value)

    @model_validator(mode="after")
    def _counts_are_consistent(self) -> NetworkConfig:
        problems = []
        if self.nat_gateways > self.az_count:
            problems.append(f"nat_gateways: {self.nat_gateways} exceeds az_count {self.az_count}")
        zones = self.availability_zones
        if zones is not None:
            if len(zones) != self.az_count:
                problems.append(f"availability_zones: lists {len(zones)} zones but az_count is {self.az_count}")
            problems.extend(duplicates("availability_zones", zones))
        raise_if_any(problems)
        return self
