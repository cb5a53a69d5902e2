"""The simulated `cdk deploy`: Tessera's synthesized templates walked by the CloudFormation double, with each
custom resource answered by what CloudFormation would call: Tessera's own functions (their real code, given
what CloudFormation sends), CDK's kubectl provider (the kubectl double, into the cluster double), moto for the
AWS calls they make. CDK's own non-Kubernetes custom resources (bucket auto-delete, default security group
lock-down, bucket notifications) change nothing the deploy later reads and are only recorded."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.exceptions import ClientError
from moto import mock_aws

from rollout import track_owner
from rollout.kube.client import KubeClient
from rollout.ledger import Ledger
from stacks.cluster.spot_role import RESOURCE_TYPE as SPOT_ROLE_TYPE
from tessera_shared import constants as shared
from tests.deploy.cloudformation_double import CloudFormationDouble, Handler, ResourceRequest, ResourceResult
from tests.deploy.cluster_double import ClusterDouble
from tests.deploy.kubectl_double import HELM_TYPE, MANIFEST_TYPE, KubectlProviderDouble
from tests.rollout.kube_double import KubernetesApiDouble

TRACKS_TYPE = "Custom::TesseraServiceTracks"
TRACK_OWNER_HANDLER = "rollout.track_owner.handle"
RECORDED_ONLY = ("Custom::S3AutoDeleteObjects", "Custom::VpcRestrictDefaultSG", "Custom::S3BucketNotifications")
TOKEN = "k8s-aws-v1.c2ltdWxhdGVkLWRlcGxveQ"  # noqa: S105 - a well-formed EKS token shape, not a secret


@dataclass(frozen=True)
class CloudAssembly:
    """The stacks of one synthesized environment: templates and the dependencies between stacks."""

    templates: dict[str, dict]
    dependencies: dict[str, set[str]]

    @classmethod
    def read(cls, outdir: Path) -> CloudAssembly:
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks = {
            name: artifact
            for name, artifact in manifest["artifacts"].items()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        return cls(
            templates={
                name: json.loads((outdir / artifact["properties"]["templateFile"]).read_text())
                for name, artifact in stacks.items()
            },
            dependencies={
                name: {d for d in artifact.get("dependencies", []) if d in stacks} for name, artifact in stacks.items()
            },
        )


class DynamoDbTables:
    """AWS::DynamoDB::Table in moto, as declared (the track owner reads the registry table)."""

    def __call__(self, request: ResourceRequest) -> ResourceResult | None:
        props = request.properties
        client = boto3.client("dynamodb")
        if request.request_type == "Create":
            client.create_table(
                TableName=props["TableName"],
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
            )
        elif request.request_type == "Delete":
            client.delete_table(TableName=props["TableName"])
        return None


class AwsSdkCall:
    """CDK's AwsCustomResource function: the SDK call its `Create`/`Update`/`Delete` property names (one JSON
    string each), made against moto, ignoring errors whose code matches `ignoreErrorCodesMatching`."""

    def __call__(self, request: ResourceRequest) -> ResourceResult | None:
        text = request.properties.get(request.request_type)
        if text is None:
            return None
        call = json.loads(text)
        client = boto3.client(call["service"].lower())
        try:
            getattr(client, xform_name(call["action"]))(**call.get("parameters", {}))
        except ClientError as error:
            pattern = call.get("ignoreErrorCodesMatching")
            if pattern is None or not re.search(pattern, error.response["Error"]["Code"]):
                raise
        return ResourceResult(physical_id=call.get("physicalResourceId", {}).get("id"))


def pushed_images_double(image: str) -> str:
    """ECR's DescribeImages as a deploy meets it once the images config names were pushed: each tag has a digest
    (derived from the reference, so a test can predict it)."""
    location, _, _ = image.rpartition(":")
    return f"{location}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


class TrackOwnerFunction:
    """Custom::TesseraServiceTracks: the track owner's real handler code, with the clients its function's
    environment (as the template resolves it) points at: the Kubernetes API double and moto's DynamoDB."""

    def __init__(self, api: KubernetesApiDouble, environment_of: Any) -> None:
        self._api = api
        self._environment_of = environment_of

    def __call__(self, request: ResourceRequest) -> ResourceResult:
        environment = self._environment_of(request.stack)
        kube = KubeClient(self._api.endpoint, lambda: TOKEN)
        ledger = Ledger(boto3.client("dynamodb"), environment[shared.ENV_REGISTRY_TABLE])
        answer = track_owner.on_event(request.event(), kube, ledger, environment, images=pushed_images_double)
        return ResourceResult(physical_id=answer["PhysicalResourceId"], data=answer.get("Data", {}))


@dataclass
class SimulatedDeploy:
    cloudformation: CloudFormationDouble
    cluster: ClusterDouble
    api: KubernetesApiDouble
    kubectl: KubectlProviderDouble

    def deploy(self, assembly: CloudAssembly) -> None:
        self.cloudformation.deploy(assembly.templates, assembly.dependencies)

    def destroy(self, assembly: CloudAssembly) -> None:
        self.cloudformation.destroy(assembly.dependencies)

    def unordered_reliances(self) -> list[str]:
        """Writes that succeeded only because the resource that made their namespace or CRD happened to run first:
        in another order, the deploy fails."""
        return [
            f"{actor} needs {what}, made by {maker}, but does not depend on it"
            for actor, what, maker in sorted(self.cluster.reliances)
            if not self.cloudformation.must_precede(maker, actor)
        ]


@contextmanager
def simulated_deploy(*, seed: int, kubernetes_version: str) -> Iterator[SimulatedDeploy]:
    """A fresh account (moto) and cluster."""
    with mock_aws(), KubernetesApiDouble() as api:
        cluster = ClusterDouble(api, kubernetes_version=kubernetes_version)
        kubectl = KubectlProviderDouble(cluster)
        handlers: dict[str, Handler] = {
            MANIFEST_TYPE: kubectl.manifest,
            HELM_TYPE: kubectl.helm_chart,
            "AWS::DynamoDB::Table": DynamoDbTables(),
            SPOT_ROLE_TYPE: AwsSdkCall(),
            **{resource_type: _recorded for resource_type in RECORDED_ONLY},
        }
        cloudformation = CloudFormationDouble(handlers=handlers, seed=seed)
        handlers[TRACKS_TYPE] = TrackOwnerFunction(
            api, lambda stack: cloudformation.function_environment(stack, TRACK_OWNER_HANDLER)
        )
        for resource_type, handler in handlers.items():
            handlers[resource_type] = _acting(cluster, handler)
        yield SimulatedDeploy(cloudformation, cluster, api, kubectl)


def _recorded(request: ResourceRequest) -> None:
    return None


def _acting(cluster: ClusterDouble, handler: Handler) -> Handler:
    """The cluster double learns which resource each write comes from."""

    def call(request: ResourceRequest) -> ResourceResult | None:
        cluster.actor = f"{request.stack}/{request.logical_id}"
        try:
            return handler(request)
        finally:
            cluster.actor = None

    return call
