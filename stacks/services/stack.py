"""Services stack: the load balancers, the namespace, the image admission policy and the track owner, and the
resources of the `main` stack group's services (stacks/services/service_resources.py; another group's are in its own
stack, stacks/services/group_stack.py).

Public services are routed on the outside load balancer, the others on the internal one that only their callers
reach (stacks/services/load_balancers.py), both in subnets of their own (so that the NetworkPolicies can tell their
addresses from pods'). Each service gets an IP target group per track and one listener rule on its route whose
weighted forward action starts at stable 100 / canary 0. Those weights belong to the rollout engine: no
Ingress object exists for these services, and the TargetGroupBindings only register pod IPs.
At rest the template's weights equal the live ones, so a later deploy does not move traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.cluster.managed_prometheus import PrometheusWorkspace
from stacks.common.access_logs_bucket import access_logs_bucket
from stacks.common.environment_scope import EnvironmentScope
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name
from stacks.config.environment import PlacedService
from stacks.config.services import FunctionsConfig, LoadBalancerConfig, ServiceSpec
from stacks.network.stack import ServiceSubnets
from stacks.services.admission import image_admission_objects
from stacks.services.kubernetes_objects import default_deny_policy, namespace_object
from stacks.services.load_balancers import ServiceLoadBalancers
from stacks.services.model_loader import loader_config_map
from stacks.services.render_inputs import ServiceNetwork
from stacks.services.scaling_objects import needs_prometheus_authentication, scaling_objects
from stacks.services.service_resources import (
    ServiceRouting,
    SharedServiceParts,
    add_service,
    model_bucket,
    service_repository,
)
from stacks.services.track_owner import TrackOwner
from tessera_shared.constants import NAMESPACE


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
        group_services: Sequence[PlacedService],
        vpc: ec2.IVpc,
        subnets: ServiceSubnets,
        cluster: eks.ICluster,
        cluster_security_group_id: str,
        artifacts_key: kms.IKey,
        prometheus: PrometheusWorkspace | None,
        **stack_props: object,
    ) -> None:
        """`prometheus`: the Cluster stack's workspace, which exists when a service has `metrics`."""
        super().__init__(scope, construct_id, **stack_props)
        specs = [placed.spec for placed in services]
        if prometheus is None and any(spec.metrics is not None for spec in specs):
            raise ValueError("a service has metrics but the environment has no Prometheus workspace")
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
            # The managed collector's ENIs sit in the cluster's (private) subnets: stacks/cluster/managed_prometheus.py.
            collector_cidrs=[subnet.ipv4_cidr_block for subnet in vpc.private_subnets] if prometheus else [],
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
        bucket = model_bucket(self, environment.name)
        namespace = eks.KubernetesManifest(
            self,
            "Namespace",
            cluster=cluster,
            manifest=[namespace_object(), default_deny_policy(), loader_config_map()],
        )
        self.tracks = TrackOwner(
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
        repositories = {placed.spec.name: service_repository(self, placed.spec) for placed in services}
        admission = eks.KubernetesManifest(
            self,
            "ImageAdmission",
            cluster=cluster,
            manifest=image_admission_objects([repository.repository_uri for repository in repositories.values()]),
            overwrite=True,
        )
        admission.node.add_dependency(namespace)
        # KEDA's CRDs come with its chart in the Cluster stack, which this stack follows.
        scaling = eks.KubernetesManifest(
            self,
            "Scaling",
            cluster=cluster,
            manifest=scaling_objects(prometheus=needs_prometheus_authentication(specs)),
            overwrite=True,
        )
        scaling.node.add_dependency(namespace)
        self.shared = SharedServiceParts(
            settings=settings,
            load_balancers=self.load_balancers,
            network=network,
            vpc=vpc,
            cluster=cluster,
            cluster_name=self._cluster_name,
            environment_name=environment.name,
            artifacts_key=artifacts_key,
            namespace=namespace,
            scaling=scaling,
            admission=admission,
            prometheus=prometheus,
        )
        self.routing: dict[str, ServiceRouting] = {}
        published = _published_load_balancers(self.load_balancers)

        # Only its load balancer reaches the pods (pod IPs sit behind the cluster security group), and the load
        # balancer reaches nothing else: ingress on the pods' group, egress on its own.
        def connect_pods(service: ServiceSpec, load_balancer: elbv2.ApplicationLoadBalancer) -> None:
            load_balancer.connections.allow_to(
                pods, ec2.Port.tcp(service.port), f"{service.name} from the Tessera load balancer"
            )

        for placed in group_services:
            routing, values = add_service(
                self,
                placed,
                index=services.index(placed),
                shared=self.shared,
                tracks=self.tracks,
                connect_pods=connect_pods,
                model_bucket=bucket,
                repository=repositories[placed.spec.name],
            )
            self.routing[placed.spec.name] = routing
            published |= values
        publish_values(self, parameter_prefix=environment.parameter_prefix, values=published)


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
