"""Where each container registry Tessera's nodes pull from serves an image, and which part of the VPC a pull
crosses: the NAT gateways (internet), the ECR interface endpoints, or the S3 gateway endpoint.

The S3 gateway endpoint takes every request to S3 in the VPC's own region through the route tables, so its
policy decides requests that Tessera's principals never sign: ECR's layer downloads (presigned URLs) and
registry.k8s.io's redirects (anonymous GETs). The Network stack grants those from `gateway_layer_buckets`;
`tests/security/test_image_pull_paths.py` checks every image the platform pulls against these paths, and
docs/images.md says where each comes from. No AWS CDK import: tests and docs read it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Route(StrEnum):
    NAT = "NAT gateway (internet)"
    ECR_ENDPOINTS = "ECR interface endpoints"
    S3_GATEWAY = "S3 gateway endpoint"


class Caller(StrEnum):
    """Who a request is signed by, which is what an endpoint policy can tell apart."""

    NODE = "the node role (this account)"
    REGISTRY = "the registry's owner (a presigned URL)"
    ANONYMOUS = "nobody (anonymous)"


@dataclass(frozen=True)
class Hop:
    """One connection a pull makes. `bucket` is set for requests to S3 (the object is read with s3:GetObject)."""

    what: str
    host: str
    route: Route
    caller: Caller
    bucket: str | None = None


class UnknownRegistryError(ValueError):
    """An image from a registry this module does not describe: find out where it serves layers, then add it."""


# aws/containers-roadmap#939 (ECR Public layers come from CloudFront, not the starport bucket); docker/sbx-releases#525
# (d2glxqk2uabbnd.cloudfront.net and d5l0dvt14r5h8.cloudfront.net); ECR user guide, "Amazon ECR interface VPC
# endpoints": the ECR endpoints do not serve public repositories.
ECR_PUBLIC = "public.ecr.aws"
# kubernetes/registry.k8s.io cmd/archeio (commit 093d55a6): blobs for AWS clients are redirected to an S3 bucket
# chosen by the client's region (internal/app/buckets.go), manifests to Google Artifact Registry; an AWS address
# in no listed region gets the CloudFront default (main.go, DEFAULT_AWS_BASE_URL).
REGISTRY_K8S_IO = "registry.k8s.io"
REGISTRY_K8S_IO_DEFAULT = "d1be1w964nk82h.cloudfront.net"
# Layers redirect to pkg-containers.githubusercontent.com (a CDN; pullist.d0t.se/ghcr.json, verified 2026-06-12).
# In 2020 they came from github-production-container-registry.s3.amazonaws.com (containerd/stargz-snapshotter#167):
# not an in-region bucket unless the VPC is in us-east-1; see docs/images.md for the check before a deploy.
GHCR = "ghcr.io"
# Where nvcr.io serves layers from is not established here (docs/images.md: how to check before a deploy).
NVCR = "nvcr.io"

# archeio's buckets.go: the client's region -> the region of the bucket it is sent to.
REGISTRY_K8S_IO_BUCKET_REGION: dict[str, str] = {
    **{
        region: region
        for region in (
            "af-south-1",
            "ap-east-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        )
    },
    "ap-east-2": "ap-east-1",
    "cn-north-1": "ap-east-1",
    "cn-northwest-1": "ap-east-1",
    "me-south-1": "me-central-1",
}
# The one bucket that does not follow the prod-registry-k8s-io-<region> pattern.
REGISTRY_K8S_IO_EU_WEST_2_BUCKET = "767373bbdcb8270361b96548387bf2a9ad0d48758c35-eu-west-2"

# EKS user guide, "View Amazon container image registries for Amazon EKS add-ons": each region has a registry of
# its own (the account differs by region), except ap-east-2, served from ap-east-1.
EKS_ADDON_REGISTRY_REGION: dict[str, str] = {"ap-east-2": "ap-east-1"}
EKS_ADDON_ACCOUNT = "<eks-account>"  # per region, from that table; the route does not depend on it

_ECR_PRIVATE_HOST = re.compile(r"^(?P<account>[^.]+)\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def registry_k8s_io_bucket(bucket_region: str) -> str:
    if bucket_region == "eu-west-2":
        return REGISTRY_K8S_IO_EU_WEST_2_BUCKET
    return f"prod-registry-k8s-io-{bucket_region}"


def ecr_layer_bucket(region: str) -> str:
    """ECR serves layers from this bucket of the registry's region (ECR user guide, "Minimum Amazon S3 gateway
    endpoint policy")."""
    return f"prod-{region}-starport-layer-bucket"


def eks_addon_registry(region: str) -> str:
    return f"{EKS_ADDON_ACCOUNT}.dkr.ecr.{EKS_ADDON_REGISTRY_REGION.get(region, region)}.amazonaws.com"


def registry_of(reference: str) -> str:
    """The registry host of an image reference (Docker's rule: a first component with a dot or colon)."""
    first, _, rest = reference.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def registry_name(host: str) -> str:
    """How docs/images.md names a registry."""
    match = _ECR_PRIVATE_HOST.match(host)
    if match is None:
        return host
    if match["account"] == EKS_ADDON_ACCOUNT:
        return "ECR (EKS add-on registry)"
    return f"ECR private ({match['region']})"


def pull_hops(host: str, region: str) -> tuple[Hop, ...]:
    """Every connection a node in `region` makes to pull an image from `host`."""
    ecr = _ECR_PRIVATE_HOST.match(host)
    if ecr is not None:
        return _ecr_private(host, ecr["region"], region)
    if host == REGISTRY_K8S_IO:
        return _registry_k8s_io(region)
    if host == ECR_PUBLIC:
        return (
            Hop("manifests", ECR_PUBLIC, Route.NAT, Caller.ANONYMOUS),
            Hop("layers", "*.cloudfront.net", Route.NAT, Caller.ANONYMOUS),
        )
    if host == GHCR:
        return (
            Hop("manifests", GHCR, Route.NAT, Caller.ANONYMOUS),
            Hop("layers", "pkg-containers.githubusercontent.com", Route.NAT, Caller.ANONYMOUS),
        )
    if host == NVCR:
        return (Hop("manifests and layers", NVCR, Route.NAT, Caller.ANONYMOUS),)
    raise UnknownRegistryError(
        f"{host}: no pull path is known for this registry; add it to stacks/network/image_registries.py"
    )


def _ecr_private(host: str, registry_region: str, region: str) -> tuple[Hop, ...]:
    bucket = ecr_layer_bucket(registry_region)
    if registry_region == region:
        return (
            Hop("manifests", host, Route.ECR_ENDPOINTS, Caller.NODE),
            Hop("layers", f"{bucket}.s3.{region}.amazonaws.com", Route.S3_GATEWAY, Caller.REGISTRY, bucket),
        )
    # Another region's registry: neither the interface endpoints nor the gateway endpoint serve it.
    return (
        Hop("manifests", host, Route.NAT, Caller.NODE),
        Hop("layers", f"{bucket}.s3.{registry_region}.amazonaws.com", Route.NAT, Caller.REGISTRY),
    )


def _registry_k8s_io(region: str) -> tuple[Hop, ...]:
    manifests = Hop(
        "manifests (redirected to Artifact Registry, *.pkg.dev)", REGISTRY_K8S_IO, Route.NAT, Caller.ANONYMOUS
    )
    bucket_region = REGISTRY_K8S_IO_BUCKET_REGION.get(region)
    if bucket_region is None:
        return manifests, Hop("layers", REGISTRY_K8S_IO_DEFAULT, Route.NAT, Caller.ANONYMOUS)
    bucket = registry_k8s_io_bucket(bucket_region)
    host = f"{bucket}.s3.dualstack.{bucket_region}.amazonaws.com"
    if bucket_region != region:
        return manifests, Hop("layers", host, Route.NAT, Caller.ANONYMOUS)
    return manifests, Hop("layers", host, Route.S3_GATEWAY, Caller.ANONYMOUS, bucket)


@dataclass(frozen=True)
class LayerBuckets:
    """A statement of the S3 gateway endpoint's policy: anonymous or presigned s3:GetObject on these buckets."""

    sid: str
    buckets: tuple[str, ...]


def gateway_layer_buckets(region: str, *, region_known: bool) -> list[LayerBuckets]:
    """The registries' buckets that the S3 gateway endpoint must serve to requests our principals do not sign.

    `region` may be a deploy-time token (an environment-agnostic synth): then registry.k8s.io's bucket is named
    by the pattern, plus eu-west-2's own name; a region with no bucket of its own gets an ARN of no bucket, and
    its pulls go out through NAT anyway."""
    statements = [LayerBuckets("EcrImageLayers", (ecr_layer_bucket(region),))]
    if not region_known:
        buckets: tuple[str, ...] = (f"prod-registry-k8s-io-{region}", REGISTRY_K8S_IO_EU_WEST_2_BUCKET)
    elif REGISTRY_K8S_IO_BUCKET_REGION.get(region) == region:
        buckets = (registry_k8s_io_bucket(region),)
    else:
        buckets = ()
    if buckets:
        statements.append(LayerBuckets("RegistryK8sIoLayers", buckets))
    return statements
