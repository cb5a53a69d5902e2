"""Services stack: the load balancers, per-track target groups and the services' Kubernetes objects.

Public services are routed on the outside load balancer, the others on the internal one that only their callers
reach (stacks/services/load_balancers.py), both in subnets of their own (so that the NetworkPolicies can tell their
addresses from pods'). Each service gets an IP target group per track and one listener rule on its route whose
weighted forward action starts at stable 100 / canary 0. Those weights belong to the rollout engine: no
Ingress object exists for these services, and the TargetGroupBindings only register pod IPs.
At rest the template's weights equal the live ones, so a later deploy does not move traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Duration, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.cluster.addons import pod_identity_role
from stacks.common.access_logs_bucket import access_logs_bucket
from stacks.common.construct_ids import pascal_case
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.nag_environment import nag_environment
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name, model_bucket_name
from stacks.config.environment import PlacedService
from stacks.config.services import FunctionsConfig, LoadBalancerConfig, ServiceSpec
from stacks.network.stack import ServiceSubnets
from stacks.services.admission import image_admission_objects
from stacks.services.kubernetes_objects import (
    NAMESPACE,
    TRACKS,
    DeployTimeValues,
    ServiceNetwork,
    default_deny_policy,
    namespace_object,
    placement_for,
    scaling_objects,
    service_objects,
    track_name,
)
from stacks.services.load_balancers import ServiceLoadBalancers
from stacks.services.model_loader import loader_config_map
from stacks.services.track_owner import TrackOwner
from tessera_shared.constants import (
    HPA_KIND,
    REGISTERED_ROOT,
    SCALED_OBJECT_KIND,
    SERVICE_LABEL,
    TARGET_GROUP_OWNER_TAG,
    TRACK_LABEL,
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


class ServicesStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: EnvironmentScope,
        load_balancer: LoadBalancerConfig,
        functions: FunctionsConfig,
        services: Sequence[PlacedService],
        vpc: ec2.IVpc,
        subnets: ServiceSubnets,
        cluster: eks.ICluster,
        cluster_security_group_id: str,
        artifacts_key: kms.IKey,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)
        settings = load_balancer
        retain = environment.retain
        self._cluster_name = cluster_name(environment.name)
        lb_subnets = subnets.load_balancer
        network = ServiceNetwork(
            vpc_cidr=subnets.vpc_cidr,
            # Literals: CDK computes the VPC's subnet CIDRs at synth time.
            load_balancer_cidrs=[subnet.ipv4_cidr_block for subnet in lb_subnets],
            endpoint_cidrs=[subnet.ipv4_cidr_block for subnet in subnets.endpoints],
            internal_ports={placed.spec.name: placed.spec.port for placed in services if not placed.spec.public},
        )
        pods = ec2.SecurityGroup.from_security_group_id(self, "ClusterSecurityGroup", cluster_security_group_id)
        self.load_balancers = ServiceLoadBalancers(
            self,
            settings=settings,
            services=[placed.spec for placed in services],
            vpc=vpc,
            subnets=lb_subnets,
            pods=pods,
            logs=access_logs_bucket(
                self, retention_days=settings.access_log_retention_days, retain=retain, logs_of="the load balancers'"
            ),
            retain=retain,
            name=self._cluster_name,
        )
        model_bucket = s3.Bucket.from_bucket_name(
            self, "ModelBucket", model_bucket_name(environment.name, account=self.account, region=self.region)
        )

        namespace = eks.KubernetesManifest(
            self,
            "Namespace",
            cluster=cluster,
            manifest=[namespace_object(), default_deny_policy(), loader_config_map()],
        )
        tracks = TrackOwner(
            self,
            "TrackOwner",
            environment=environment,
            functions=functions,
            cluster=cluster,
            namespace=namespace,
            vpc=vpc,
            cluster_security_group_id=cluster_security_group_id,
            registry_key=artifacts_key,
        )
        # Only this environment's service images, by digest, run in the namespace; in place before any service's pods.
        repositories = {placed.spec.name: self._repository(placed.spec) for placed in services}
        admission = eks.KubernetesManifest(
            self,
            "ImageAdmission",
            cluster=cluster,
            manifest=image_admission_objects([repository.repository_uri for repository in repositories.values()]),
            overwrite=True,
        )
        admission.node.add_dependency(namespace)
        # KEDA's CRDs come with its chart in the Cluster stack, which this stack follows.
        scaling = eks.KubernetesManifest(self, "Scaling", cluster=cluster, manifest=scaling_objects(), overwrite=True)
        scaling.node.add_dependency(namespace)
        self.routing: dict[str, ServiceRouting] = {}
        published = _published_load_balancers(self.load_balancers)
        for index, placed in enumerate(services):
            service = placed.spec
            routing = self._routing(service, index, settings, vpc)
            self.routing[service.name] = routing
            # Only its load balancer reaches the pods (pod IPs sit behind the cluster security group), and the load
            # balancer reaches nothing else: ingress on the pods' group, egress on its own.
            routing.load_balancer.connections.allow_to(
                pods, ec2.Port.tcp(service.port), f"{service.name} from the Tessera load balancer"
            )
            reader, association = self._model_reader(service, cluster, model_bucket, artifacts_key, environment.name)
            repository = repositories[service.name]
            objects = service_objects(
                service,
                placement=placement_for(service, placed.pool),
                values=DeployTimeValues(
                    image_uri=repository.repository_uri_for_tag(service.image.tag),
                    model_bucket=model_bucket.bucket_name,
                    target_group_arns={track: tg.target_group_arn for track, tg in routing.target_groups.items()},
                    network=network,
                    region=self.region,
                    cluster_name=cluster.cluster_name,
                    stable_target_group_dimension=routing.target_groups["stable"].target_group_full_name,
                    load_balancer_dimension=routing.load_balancer.load_balancer_full_name,
                ),
                drain_seconds=settings.deregistration_delay_seconds,
            )
            # The objects whose running version and size the rollout engine owns go through the track owner;
            # a plain manifest would put config's values back on every deploy (see stacks/services/track_owner.py).
            owned = [obj for obj in objects if obj["kind"] in ENGINE_OWNED_KINDS]
            manifest = eks.KubernetesManifest(
                self,
                f"{pascal_case(service.name)}Objects",
                cluster=cluster,
                manifest=[obj for obj in objects if obj["kind"] not in ENGINE_OWNED_KINDS],
                overwrite=True,
            )
            manifest.node.add_dependency(namespace)
            manifest.node.add_dependency(scaling)  # the ScaledObject's TriggerAuthentication
            # Pod Identity injects credentials only into pods created after the association exists; the role's
            # policy must be in place before the first model download.
            manifest.node.add_dependency(association)
            manifest.node.add_dependency(reader)
            tracks.apply(
                service.name,
                owned,
                image_repository=repository.repository_uri,
                repository_arn=repository.repository_arn,
                after=[manifest, association, reader, admission],
            )
            published |= _published_routing(service, routing)
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)

    def _repository(self, service: ServiceSpec) -> ecr.IRepository:
        """By its name in this stack's account and region, not imported from the Artifacts stack: the repository
        is named in config, and its URI needs no cross-stack output."""
        return ecr.Repository.from_repository_name(
            self, f"{pascal_case(service.name)}Repository", service.image.repository
        )

    def _routing(
        self,
        service: ServiceSpec,
        index: int,
        settings: LoadBalancerConfig,
        vpc: ec2.IVpc,
    ) -> ServiceRouting:
        target_groups = {
            track: elbv2.ApplicationTargetGroup(
                self,
                f"{pascal_case(service.name)}{track.capitalize()}TargetGroup",
                vpc=vpc,
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
            Tags.of(target_group).add(TARGET_GROUP_OWNER_TAG, self._cluster_name)
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
            self,
            f"{pascal_case(service.name)}Rule",
            listener=self.load_balancers.listener_for(service),
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
            rule=rule, target_groups=target_groups, load_balancer=self.load_balancers.load_balancer_for(service)
        )

    def _model_reader(
        self, service: ServiceSpec, cluster: eks.ICluster, bucket: s3.IBucket, key: kms.IKey, environment_name: str
    ) -> tuple[iam.Role, eks.CfnPodIdentityAssociation]:
        """Pod Identity for the service's pods: read its own model prefix, nothing else."""
        role = pod_identity_role(
            self,
            f"{pascal_case(service.name)}ModelReader",
            description=f"{service.name} model reader",
            cluster_name=self._cluster_name,
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
                        "kms:ViaService": f"s3.{self.region}.{self.url_suffix}",
                        "kms:EncryptionContext:aws:s3:arn": bucket.bucket_arn,
                    }
                },
            )
        )
        env = nag_environment(self)
        bucket_as_named = model_bucket_name(environment_name, account=env.account, region=env.region)
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
            self,
            f"{pascal_case(service.name)}PodIdentity",
            cluster_name=cluster.cluster_name,
            namespace=NAMESPACE,
            service_account=service.name,
            role_arn=role.role_arn,
        )
        return role, association


def _published_load_balancers(load_balancers: ServiceLoadBalancers) -> dict[str, PublishedValue]:
    published = {"services/namespace": PublishedValue(NAMESPACE, "Namespace of every inference service")}
    if load_balancers.outside is not None and load_balancers.outside_listener is not None:
        published["services/load-balancer-dns"] = PublishedValue(
            load_balancers.outside.load_balancer_dns_name, "DNS name of the public services' load balancer"
        )
        published["services/listener-arn"] = PublishedValue(
            load_balancers.outside_listener.listener_arn, "Listener of the public services"
        )
    if load_balancers.internal is not None:
        published["services/internal-load-balancer-dns"] = PublishedValue(
            load_balancers.internal.load_balancer_dns_name,
            "DNS name of the internal load balancer (callers use it at the callee's port)",
        )
    return published


def _published_routing(service: ServiceSpec, routing: ServiceRouting) -> dict[str, PublishedValue]:
    prefix = f"services/{service.name}"
    values = {
        f"{prefix}/listener-rule-arn": PublishedValue(routing.rule.listener_rule_arn, f"{service.name} listener rule"),
    }
    for track in TRACKS:
        values[f"{prefix}/{track}-target-group-arn"] = PublishedValue(
            routing.target_groups[track].target_group_arn, f"{service.name} {track} target group"
        )
        values[f"{prefix}/{track}-deployment"] = PublishedValue(
            track_name(service, track), f"{service.name} {track} Deployment (namespace {NAMESPACE})"
        )
    return values
