"""The track owner: one function (lambda/rollout/track_owner.py) behind a CloudFormation custom
resource per service, which applies the service's Deployments and stable autoscaler so that a
`cdk deploy` changes what config owns and leaves what the rollout engine owns (the running version, a
running rollout's canary and floor). See docs/rollouts.md, "One owner of the running version"."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CustomResource, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from stacks.cluster.cdk_internals_nag import BASIC_EXECUTION, LOGS_REASON, acknowledge
from stacks.common.cluster_api_access import (
    cluster_api_security_group,
    cluster_environment,
    grant_kubernetes_access,
    group_access_entry,
)
from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.kubernetes_access import access_objects
from stacks.common.lambda_function import TesseraFunction
from stacks.common.resource_names import registry_table_name
from stacks.config.services import FunctionsConfig
from tessera_shared import constants as shared

RESOURCE_TYPE = "Custom::TesseraServiceTracks"
VERBS = ["get", "create", "update", "delete"]
TRACK_OWNER_RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": VERBS},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": VERBS},
    {"apiGroups": [shared.KEDA_API_VERSION.split("/")[0]], "resources": [shared.SCALED_OBJECTS], "verbs": VERBS},
]


class TrackOwner(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        functions: FunctionsConfig,
        cluster: eks.ICluster,
        namespace: eks.KubernetesManifest,
        vpc: ec2.IVpc,
        cluster_security_group_id: str,
        registry_key: kms.IKey,
        kubernetes_role: eks.KubernetesManifest | None = None,
    ) -> None:
        """`kubernetes_role`: the Role and RoleBinding another track owner made (a stack group's track owner maps
        its function to the same Kubernetes group); None: this one makes them."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        table = registry_table_name(environment.name)
        security_group = cluster_api_security_group(
            self,
            "SecurityGroup",
            vpc=vpc,
            cluster_security_group_id=cluster_security_group_id,
            description="Tessera track owner",
        )
        self.function = TesseraFunction(
            self,
            "Function",
            handler="rollout.track_owner.handle",
            description=f"Tessera {environment.name}: applies the services' track objects",
            settings=functions,
            environment={
                **cluster_environment(cluster),
                shared.ENV_REGISTRY_TABLE: table,
                "POWERTOOLS_SERVICE_NAME": shared.TRACK_OWNER_FUNCTION_SERVICE,
            },
            removal_policy=environment.removal_policy,
            timeout_seconds=300,
            vpc=vpc,
            security_groups=[security_group],
        )
        role = self.function.role
        role.add_to_policy(
            iam.PolicyStatement(
                # Reads the service's lock; during a rollout, records the floor a deploy sets (rollout/locks.py).
                sid="RolloutLocks",
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
                resources=[stack.format_arn(service="dynamodb", resource="table", resource_name=table)],
            )
        )
        # The registry table's key, only through DynamoDB.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RegistryTableKey",
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[registry_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"dynamodb.{stack.region}.{stack.url_suffix}"}},
            )
        )
        Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="The Lambda ENI calls in the VPC (CreateNetworkInterface and friends) take no resource ARNs.",
            )
        )
        # No EKS access policy: the entry maps the role to a group, and a Role grants that group exactly the
        # track owner's calls (lambda/rollout/track_owner.py: find, apply, delete).
        self.kubernetes_role: eks.KubernetesManifest
        self._access: list[IConstruct]
        if kubernetes_role is None:
            self.kubernetes_role = grant_kubernetes_access(
                self,
                cluster=cluster,
                role=role,
                group=shared.TRACK_OWNER_KUBERNETES_GROUP,
                role_objects=access_objects(
                    name="tessera-track-owner",
                    group=shared.TRACK_OWNER_KUBERNETES_GROUP,
                    rules=TRACK_OWNER_RULES,
                    component="track-owner",
                ),
                after=[namespace],
            )
            self._access = [self.kubernetes_role]
        else:
            self.kubernetes_role = kubernetes_role
            entry = group_access_entry(self, cluster=cluster, role=role, group=shared.TRACK_OWNER_KUBERNETES_GROUP)
            self._access = [entry, kubernetes_role]
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.function.function)
        _acknowledge_provider_framework(self.provider)

    def apply(
        self,
        service: str,
        objects: list[dict],
        *,
        image_repository: str,
        repository_arn: str,
        after: list[IConstruct],
    ) -> CustomResource:
        """The custom resource that owns one service's track objects, created after `after`. The service's image
        repository goes into the function's environment, not the resource's properties: anyone who may invoke the
        function can write properties, and the function applies only images from this repository, each pinned to
        the digest its tag has at the deploy (rollout/image_digests.py)."""
        self.function.function.add_environment(shared.image_repository_variable(service), image_repository)
        self.function.role.add_to_policy(
            iam.PolicyStatement(
                sid=f"PinImagesOf{pascal_case(service)}", actions=["ecr:DescribeImages"], resources=[repository_arn]
            )
        )
        resource = CustomResource(
            self,
            f"{pascal_case(service)}Tracks",
            service_token=self.provider.service_token,
            resource_type=RESOURCE_TYPE,
            # One JSON string: CloudFormation hands a custom resource every scalar as a string ("0", "true").
            properties={
                "Namespace": shared.NAMESPACE,
                "Service": service,
                "Objects": Stack.of(self).to_json_string(objects),
            },
        )
        for dependency in (*after, *self._access):
            resource.node.add_dependency(dependency)
        return resource


def _acknowledge_provider_framework(provider: cr.Provider) -> None:
    on_event = provider.node.find_child("framework-onEvent")
    role = on_event.node.find_child("ServiceRole")
    acknowledge(role, BASIC_EXECUTION, LOGS_REASON)
    stack = Stack.of(provider)
    handler = provider.on_event_handler
    handler_arn = f"<{stack.get_logical_id(handler.node.default_child)}.Arn>"
    acknowledge(
        role.node.find_child("DefaultPolicy"),
        f"AwsSolutions-IAM5[Resource::{handler_arn}:*]",
        "The provider framework invokes any version of the track owner function: the ARN suffix is the version.",
    )
    acknowledge(on_event, "AwsSolutions-L1", "CDK pins the provider framework's runtime; Tessera cannot change it.")
