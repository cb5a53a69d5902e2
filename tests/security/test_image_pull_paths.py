"""Issue 19: every image the platform runs can be pulled through the network the templates build.

The S3 gateway endpoint takes all of the region's S3 traffic, so its policy also decides registry.k8s.io's
redirects (anonymous GETs on prod-registry-k8s-io-<region>) and ECR's presigned layer downloads; internet
registries need the NAT gateways; ECR needs its interface endpoints. An environment-agnostic synth (dev, prod) is
checked in every region registry.k8s.io knows, plus one it does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stacks.cluster.image_inventory import load_inventory
from stacks.network.image_registries import (
    REGISTRY_K8S_IO_BUCKET_REGION,
    REGISTRY_K8S_IO_EU_WEST_2_BUCKET,
    gateway_layer_buckets,
)
from tests.security.endpoint_policies import PseudoParameters, Request, allows, resolve
from tests.security.image_pulls import chart_releases, pull_problems, pulled_images
from tests.synth import SynthesizedEnvironment

ENVIRONMENTS = ["dev", "prod", "variant"]
ACCOUNT = "111122223333"
# Every region registry.k8s.io sends to a bucket (in region or not), and one it has no entry for.
AGNOSTIC_REGIONS = [*sorted(REGISTRY_K8S_IO_BUCKET_REGION), "us-gov-west-1"]
IMAGES_DOC = Path(__file__).resolve().parents[2] / "docs" / "images.md"


def _regions(env: SynthesizedEnvironment) -> list[str]:
    return [env.config.region] if env.config.region else AGNOSTIC_REGIONS


def _pseudo(env: SynthesizedEnvironment, region: str) -> PseudoParameters:
    return PseudoParameters(account=env.config.account or ACCOUNT, region=region)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_image_can_be_pulled_through_the_network(environment: str, request: pytest.FixtureRequest) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    problems = [line for region in _regions(env) for line in pull_problems(env, _pseudo(env, region))]
    assert not problems, f"{len(problems)} refused pulls, the first:\n" + "\n".join(problems[:12])


def test_metrics_server_comes_from_registry_k8s_io(dev: SynthesizedEnvironment) -> None:
    """The image that motivated the issue is among those checked (the inventory at chart 3.13.1)."""
    images = {image.reference for image in pulled_images(dev, _pseudo(dev, "us-east-1"))}
    assert "registry.k8s.io/metrics-server/metrics-server:v0.8.1" in images


def test_service_images_come_from_this_account_and_region(variant: SynthesizedEnvironment) -> None:
    pseudo = _pseudo(variant, "us-east-1")
    services = {i.reference for i in pulled_images(variant, pseudo) if i.component.startswith("Deployment inference/")}
    registry = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
    assert services == {f"{registry}/{s.image.repository}:{s.image.tag}" for s in variant.config.services}


def _gateway_policy(env: SynthesizedEnvironment, region: str) -> dict:
    [gateway] = [
        e["Properties"]
        for e in env.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    return resolve(gateway["PolicyDocument"], _pseudo(env, region))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("environment", "region"), [("variant", "us-east-1"), ("dev", "eu-west-2"), ("dev", "sa-east-1")]
)
def test_the_s3_endpoint_opens_registry_layers_for_reading_only(
    environment: str, region: str, request: pytest.FixtureRequest
) -> None:
    env: SynthesizedEnvironment = request.getfixturevalue(environment)
    policy = _gateway_policy(env, region)
    bucket = REGISTRY_K8S_IO_EU_WEST_2_BUCKET if region == "eu-west-2" else None
    layer = f"arn:aws:s3:::{bucket or f'prod-registry-k8s-io-{region}'}/containers/images/sha256:ab12"
    assert allows(policy, Request("s3:GetObject", layer, None))
    # Nothing but reads, and nowhere else: another account's or nobody's writes stay out.
    assert not allows(policy, Request("s3:PutObject", layer, None))
    assert not allows(policy, Request("s3:PutObject", "arn:aws:s3:::exfiltration/x", "999988887777"))
    assert not allows(policy, Request("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/x", None))
    # This account's principals keep every bucket.
    assert allows(policy, Request("s3:PutObject", "arn:aws:s3:::tessera-models/x", ACCOUNT))


@pytest.mark.parametrize(
    ("region", "buckets"),
    [
        ("us-east-1", ("prod-registry-k8s-io-us-east-1",)),
        ("eu-west-2", (REGISTRY_K8S_IO_EU_WEST_2_BUCKET,)),
        ("ap-east-2", None),  # sent to ap-east-1's bucket: another region, through NAT
        ("us-gov-west-1", None),  # no bucket: CloudFront, through NAT
    ],
)
def test_a_known_region_opens_only_its_own_registry_bucket(region: str, buckets: tuple[str, ...] | None) -> None:
    statements = {statement.sid: statement.buckets for statement in gateway_layer_buckets(region, region_known=True)}
    assert statements.get("RegistryK8sIoLayers") == buckets
    assert statements["EcrImageLayers"] == (f"prod-{region}-starport-layer-bucket",)


def test_the_check_refuses_a_network_without_nat_or_registry_buckets(variant: SynthesizedEnvironment) -> None:
    """The check has teeth: remove the NAT routes, or the registry.k8s.io statement, and it reports the pulls."""
    pseudo = _pseudo(variant, "us-east-1")
    without_nat = copy.deepcopy(variant.template_json("Network"))
    for resource in without_nat["Resources"].values():
        if resource["Type"] == "AWS::EC2::Route":
            resource["Properties"].pop("NatGatewayId", None)
    problems = pull_problems(variant, pseudo, without_nat)
    assert any("ghcr.io" in line and "NAT" in line for line in problems)
    assert not any("Deployment inference/" in line for line in problems)  # ECR in the region needs no NAT

    without_statement = copy.deepcopy(variant.template_json("Network"))
    for resource in without_statement["Resources"].values():
        document = resource["Properties"].get("PolicyDocument", {})
        document["Statement"] = [s for s in document.get("Statement", []) if "registry-k8s-io" not in json.dumps(s)]
    problems = pull_problems(variant, pseudo, without_statement)
    assert any("metrics-server" in line and "prod-registry-k8s-io-us-east-1" in line for line in problems)


def test_the_inventory_covers_exactly_the_charts_installed(
    dev: SynthesizedEnvironment, prod: SynthesizedEnvironment, variant: SynthesizedEnvironment
) -> None:
    installed = chart_releases(dev) | chart_releases(prod) | chart_releases(variant)
    inventory = load_inventory()
    assert installed == {(name, entry.version) for name, entry in inventory.charts.items()}


def test_the_images_page_lists_every_image(variant: SynthesizedEnvironment) -> None:
    page = IMAGES_DOC.read_text()
    inventory = load_inventory()
    missing = [
        f"{image.component}: {image.reference({})}"
        for entry in inventory.charts.values()
        for image in entry.images
        if image.reference({}) not in page
    ]
    missing += [f"add-on {name}" for name in inventory.addons if f"`{name}`" not in page]
    scheduler = variant.config.cluster.charts.neuron_kube_scheduler_image
    missing += [] if scheduler in page else [f"the Neuron kube-scheduler image {scheduler}"]
    assert not missing, missing
