"""One service's resources, made in the stack of its stack group (stacks/config/stack_groups.py): an IP target group
per track, the weighted listener rule on its route, the security-group rules between its load balancer and the pods,
the Pod Identity role that reads its model, its Kubernetes objects and the track owner's resource for the objects
whose running version the rollout engine owns. The load balancers, namespace and admission policy they use are the
Services stack's (`SharedServiceParts`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from stacks.cluster.addons import pod_identity_role
from stacks.cluster.managed_prometheus import PrometheusWorkspace
from stacks.common.construct_ids import pascal_case
from stacks.common.nag_environment import nag_environment
from stacks.common.published_values import PublishedValue
from stacks.common.resource_names import model_bucket_name
from stacks.config.environment import PlacedService
from stacks.config.services import LoadBalancerConfig, ServiceSpec
from stacks.services.kubernetes_objects import service_objects
from stacks.services.load_balancers import ServiceLoadBalancers
from stacks.services.placement import placement_for
from stacks.services.render_inputs import PROMETHEUS_PLACEHOLDER, DeployTimeValues, ServiceNetwork, track_name
from stacks.services.track_owner import TrackOwner
from tessera_shared.constants import (
    HPA_KIND,
    NAMESPACE,
    REGISTERED_ROOT,
    SCALED_OBJECT_KIND,
    SERVICE_LABEL,
    TARGET_GROUP_OWNER_TAG,
    TRACK_LABEL,
    TRACKS,
)

FIRST_RULE_PRIORITY = 10
# The rollout engine owns the running version of these and, during a rollout, the canary and stable's floor.
ENGINE_OWNED_KINDS = frozenset({"Deployment", HPA_KIND, SCALED_OBJECT_KIND})


@dataclass(frozen=True)
class ServiceRouting:
    """What the rollout engine needs to move one service's traffic."""

    rule: elbv2.ApplicationListenerRule
    target_groups: dict[str, elbv2.ApplicationTargetGroup]
    load_balancer: elbv2.ApplicationLoadBalancer  # the one whose listener holds the rule


@dataclass(frozen=True)
class SharedServiceParts:
    """What every service's resources use from the Services stack, whichever stack they are made in."""

    settings: LoadBalancerConfig
    load_balancers: ServiceLoadBalancers
    network: ServiceNetwork
    vpc: ec2.IVpc
    cluster: eks.ICluster
    cluster_name: str
    environment_name: str
    artifacts_key: kms.IKey
    namespace: eks.KubernetesManifest
    scaling: eks.KubernetesManifest
    admission: eks.KubernetesManifest
    prometheus: PrometheusWorkspace | None = None  # the Cluster stack's workspace, when a service has `metrics`


# Lets the service's load balancer reach its pods on its port (and nothing else): the rules are made in the
# stack that calls it.
ConnectPods = Callable[[ServiceSpec, elbv2.ApplicationLoadBalancer], None]


def add_service(
    scope: Stack,
    placed: PlacedService,
    *,
    index: int,
    shared: SharedServiceParts,
    tracks: TrackOwner,
    connect_pods: ConnectPods,
    model_bucket: s3.IBucket,
    repository: ecr.IRepository,
) -> tuple[ServiceRouting, dict[str, PublishedValue]]:
    """The service's resources in `scope`; `index` is its place in config (its listener rule's priority)."""
    service = placed.spec
    routing = _routing(scope, service, index, shared)
    connect_pods(service, routing.load_balancer)
    reader, association = _model_reader(scope, service, shared, model_bucket)
    objects = service_objects(
        service,
        placement=placement_for(service, placed.pool),
        values=DeployTimeValues(
            image_uri=repository.repository_uri_for_tag(service.image.tag),
            model_bucket=model_bucket.bucket_name,
            target_group_arns={track: tg.target_group_arn for track, tg in routing.target_groups.items()},
            network=shared.network,
            region=scope.region,
            cluster_name=shared.cluster.cluster_name,
            stable_target_group_dimension=routing.target_groups["stable"].target_group_full_name,
            load_balancer_dimension=routing.load_balancer.load_balancer_full_name,
            prometheus_server_address=(
                shared.prometheus.server_address if shared.prometheus else PROMETHEUS_PLACEHOLDER
            ),
        ),
        drain_seconds=shared.settings.deregistration_delay_seconds,
    )
    # The objects whose running version and size the rollout engine owns go through the track owner;
    # a plain manifest would put config's values back on every deploy (see stacks/services/track_owner.py).
    owned = [obj for obj in objects if obj["kind"] in ENGINE_OWNED_KINDS]
    manifest = eks.KubernetesManifest(
        scope,
        f"{pascal_case(service.name)}Objects",
        cluster=shared.cluster,
        manifest=[obj for obj in objects if obj["kind"] not in ENGINE_OWNED_KINDS],
        overwrite=True,
    )
    manifest.node.add_dependency(shared.namespace)
    manifest.node.add_dependency(shared.scaling)  # the ScaledObject's TriggerAuthentication
    # Pod Identity injects credentials only into pods created after the association exists; the role's
    # policy must be in place before the first model download.
    manifest.node.add_dependency(association)
    manifest.node.add_dependency(reader)
    tracks.apply(
        service.name,
        owned,
        image_repository=repository.repository_uri,
        repository_arn=repository.repository_arn,
        after=[manifest, association, reader, shared.admission],
    )
    return routing, _published_routing(service, routing)


def model_bucket(scope: Stack, environment_name: str) -> s3.IBucket:
    """The Artifacts stack's model bucket, by its derived name (no cross-stack output)."""
    return s3.Bucket.from_bucket_name(
        scope, "ModelBucket", model_bucket_name(environment_name, account=scope.account, region=scope.region)
    )


def service_repository(scope: Stack, service: ServiceSpec) -> ecr.IRepository:
    """By its name in this stack's account and region, not imported from the Artifacts stack: the repository is
    named in config, and its URI needs no cross-stack output."""
    return ecr.Repository.from_repository_name(
        scope, f"{pascal_case(service.name)}Repository", service.image.repository
    )


def _routing(scope: Stack, service: ServiceSpec, index: int, shared: SharedServiceParts) -> ServiceRouting:
    settings = shared.settings
    target_groups = {
        track: elbv2.ApplicationTargetGroup(
            scope,
            f"{pascal_case(service.name)}{track.capitalize()}TargetGroup",
            vpc=shared.vpc,
            port=service.port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=Duration.seconds(settings.deregistration_delay_seconds),
            slow_start=Duration.seconds(settings.slow_start_seconds) if settings.slow_start_seconds else None,
            health_check=elbv2.HealthCheck(
                path=service.health_path,
                healthy_http_codes="200",
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        for track in TRACKS
    }
    for track, target_group in target_groups.items():
        # The load balancer controller's IAM policy lets it register pods only into target groups with this tag.
        Tags.of(target_group).add(TARGET_GROUP_OWNER_TAG, shared.cluster_name)
        # Prepare moves a service's weights only between target groups tagged for it and the track.
        Tags.of(target_group).add(SERVICE_LABEL, service.name)
        Tags.of(target_group).add(TRACK_LABEL, track)
    route = service.route
    conditions = (
        [elbv2.ListenerCondition.host_headers([route.host])]
        if route.host
        else [elbv2.ListenerCondition.path_patterns([route.path_prefix, f"{route.path_prefix}/*"])]
    )
    rule = elbv2.ApplicationListenerRule(
        scope,
        f"{pascal_case(service.name)}Rule",
        listener=shared.load_balancers.listener_for(service),
        priority=FIRST_RULE_PRIORITY + index * 10,
        conditions=conditions,
        # Rest position; the rollout engine moves these weights and always returns them here.
        action=elbv2.ListenerAction.weighted_forward(
            [
                elbv2.WeightedTargetGroup(target_group=target_groups["stable"], weight=100),
                elbv2.WeightedTargetGroup(target_group=target_groups["canary"], weight=0),
            ]
        ),
    )
    Tags.of(rule).add(SERVICE_LABEL, service.name)  # Prepare moves only a rule tagged for the service
    return ServiceRouting(
        rule=rule, target_groups=target_groups, load_balancer=shared.load_balancers.load_balancer_for(service)
    )


def _model_reader(
    scope: Stack, service: ServiceSpec, shared: SharedServiceParts, bucket: s3.IBucket
) -> tuple[iam.Role, eks.CfnPodIdentityAssociation]:
    """Pod Identity for the service's pods: read its own model prefix, nothing else."""
    key = shared.artifacts_key
    role = pod_identity_role(
        scope,
        f"{pascal_case(service.name)}ModelReader",
        description=f"{service.name} model reader",
        cluster_name=shared.cluster_name,
        namespace=NAMESPACE,
        service_account=service.name,
    )
    # The loader reads the registry's record of a version, then the object versions it names.
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[
                bucket.arn_for_objects(f"{service.model_prefix}*"),
                bucket.arn_for_objects(f"{REGISTERED_ROOT}{service.name}/*"),
            ],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{service.model_prefix}*"]}},
        )
    )
    # Only through S3, and only for this bucket's objects (with S3 Bucket Keys the context is the bucket ARN).
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={
                "StringEquals": {
                    "kms:ViaService": f"s3.{scope.region}.{scope.url_suffix}",
                    "kms:EncryptionContext:aws:s3:arn": bucket.bucket_arn,
                }
            },
        )
    )
    env = nag_environment(scope)
    bucket_as_named = model_bucket_name(shared.environment_name, account=env.account, region=env.region)
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:{env.partition}:s3:::{bucket_as_named}/{service.model_prefix}*]",
            reason=f"Model versions are folders under {service.model_prefix}; the service may read any of "
            "its own versions and nothing outside its prefix.",
        )
    )
    Validations.of(role.node.find_child("DefaultPolicy")).acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:{env.partition}:s3:::{bucket_as_named}/{REGISTERED_ROOT}"
            f"{service.name}/*]",
            reason="The model loader reads the registry's record of any of the service's own versions.",
        )
    )
    # L1: the L2 ServiceAccount renders its own manifest and cannot turn off the token mount.
    association = eks.CfnPodIdentityAssociation(
        scope,
        f"{pascal_case(service.name)}PodIdentity",
        cluster_name=shared.cluster.cluster_name,
        namespace=NAMESPACE,
        service_account=service.name,
        role_arn=role.role_arn,
    )
    return role, association


def _published_routing(service: ServiceSpec, routing: ServiceRouting) -> dict[str, PublishedValue]:
    prefix = f"services/{service.name}"
    values = {
        f"{prefix}/listener-rule-arn": PublishedValue(
            routing.rule.listener_rule_arn, f"{service.name} listener rule", per_service=True
        ),
    }
    for track in TRACKS:
        values[f"{prefix}/{track}-target-group-arn"] = PublishedValue(
            routing.target_groups[track].target_group_arn, f"{service.name} {track} target group", per_service=True
        )
        values[f"{prefix}/{track}-deployment"] = PublishedValue(
            track_name(service, track), f"{service.name} {track} Deployment (namespace {NAMESPACE})", per_service=True
        )
    return values
