"""What every node pool shares: the node's encrypted gp3 root volume, and the patterns of pool names and Karpenter
durations."""

from __future__ import annotations

from pydantic import Field

from stacks.config.base import StrictModel

POOL_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,20}$"
DURATION_PATTERN = r"^([0-9]+(s|m|h))+$"
DURATION_OR_NEVER_PATTERN = r"^(([0-9]+(s|m|h))+|Never)$"


class NodeDisk(StrictModel):
    """The encrypted gp3 root volume of a node."""

    disk_size_gib: int = Field(50, ge=20, le=16384)
    disk_throughput_mibps: int = Field(125, ge=125, le=2000, description="gp3 throughput (125 is gp3's baseline).")
    disk_iops: int = Field(3000, ge=3000, le=80000, description="gp3 IOPS (3000 is gp3's baseline).")
