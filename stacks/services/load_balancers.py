"""The services' two load balancers: who may reach a service is decided by which one routes it.

- The outside load balancer routes only services marked `public`. `load_balancer` in config shapes it: internal or
  internet-facing, its allowed CIDRs (the VPC's own CIDR when none are given), its certificate, its WAF web ACL.
- The internal load balancer routes every other service, each on a listener at the service's own port, and its
  security group admits only the pods' (the EKS cluster security group). The callers' NetworkPolicies then allow
  each pod only the ports of the services it `calls`, so a pod reaches exactly its callees.
Both sit in the load balancer subnets, which hold no node or pod; either is created only if it routes a service.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Stack, Tags, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3

from stacks.common.construct_ids import pascal_case
from stacks.config.services import LoadBalancerConfig, ServiceSpec
from stacks.services.load_balancer_logs import enable_access_logs
from stacks.services.waf import protect_with_waf
from tessera_shared.constants import LOAD_BALANCER_OWNER_TAG


class ServiceLoadBalancers:
    """Creates the load balancers the services need and says which listener routes each service."""

    def __init__(
        self,
        stack: Stack,
        *,
        settings: LoadBalancerConfig,
        services: Sequence[ServiceSpec],
        vpc: ec2.IVpc,
        subnets: list[ec2.ISubnet],
        pods: ec2.ISecurityGroup,
        logs: s3.IBucket,
        retain: bool,
        name: str,
    ) -> None:
        self._settings = settings
        self._stack = stack
        self._vpc = vpc
        self._subnets = subnets
        self._retain = retain
        self._logs = logs
        self._name = name
        self.outside: elbv2.ApplicationLoadBalancer | None = None
        self.outside_listener: elbv2.ApplicationListener | None = None
        self.internal: elbv2.ApplicationLoadBalancer | None = None
        self._listeners: dict[str, elbv2.ApplicationListener] = {}
        public = [service for service in services if service.public]
        internal = [service for service in services if not service.public]
        if public:
            self.outside, self.outside_listener = self._outside()
            self._listeners |= {service.name: self.outside_listener for service in public}
        if internal:
            self.internal = self._internal_load_balancer(pods, internal)
            self._listeners |= {s.name: self._internal_listener(self.internal, s) for s in internal}

    def listener_for(self, service: ServiceSpec) -> elbv2.ApplicationListener:
        return self._listeners[service.name]

    def load_balancer_for(self, service: ServiceSpec) -> elbv2.ApplicationLoadBalancer:
        return self._listeners[service.name].load_balancer

    @property
    def all(self) -> list[elbv2.ApplicationLoadBalancer]:
        return [balancer for balancer in (self.outside, self.internal) if balancer is not None]

    def _outside(self) -> tuple[elbv2.ApplicationLoadBalancer, elbv2.ApplicationListener]:
        settings = self._settings
        security_group = self._security_group("LoadBalancerSecurityGroup", "Tessera public services load balancer")
        # With HTTPS, port 80 only redirects to 443.
        ports = [443, 80] if settings.is_https else [80]
        open_internet = settings.internet_facing and not settings.allowed_cidrs
        peers = (
            [ec2.Peer.any_ipv4()]
            if open_internet
            else [ec2.Peer.ipv4(cidr) for cidr in settings.allowed_cidrs or [self._vpc.vpc_cidr_block]]
        )
        for peer in peers:
            for port in ports:
                security_group.add_ingress_rule(peer, ec2.Port.tcp(port), "Clients of the public services")
        if open_internet:
            reason = (
                "Internet-facing load balancer configured without allowed_cidrs: it serves the public behind a WAF "
                "web ACL (config refuses it without one)."
            )
        elif not settings.allowed_cidrs:
            # The VPC CIDR is a token here, which cdk-nag cannot evaluate.
            reason = "Internal load balancer: ingress is limited to the VPC's own CIDR block."
        else:
            reason = ""
        if reason:
            Validations.of(security_group).acknowledge(Acknowledgment(id="AwsSolutions-EC23", reason=reason))
        load_balancer = self._load_balancer(
            "LoadBalancer", security_group, internet_facing=settings.internet_facing, log_prefix="alb"
        )
        if open_internet and settings.waf is not None:
            protect_with_waf(load_balancer, settings=settings.waf, name=f"{self._name}-services")
        if settings.is_https:
            listener = load_balancer.add_listener(
                "Https", port=443, **self._listener_protocol(), default_action=_not_found(), open=False
            )
            load_balancer.add_redirect(source_port=80, target_port=443, open=False)
        else:
            listener = load_balancer.add_listener(
                "Http", port=80, **self._listener_protocol(), default_action=_not_found(), open=False
            )
        return load_balancer, listener

    def _internal_load_balancer(
        self, pods: ec2.ISecurityGroup, services: Sequence[ServiceSpec]
    ) -> elbv2.ApplicationLoadBalancer:
        security_group = self._security_group(
            "InternalLoadBalancerSecurityGroup", "Tessera internal load balancer: calls between services"
        )
        for service in services:
            security_group.add_ingress_rule(pods, ec2.Port.tcp(service.port), f"Callers of {service.name}")
        return self._load_balancer(
            "InternalLoadBalancer", security_group, internet_facing=False, log_prefix="alb-internal"
        )

    def _internal_listener(
        self, load_balancer: elbv2.ApplicationLoadBalancer, service: ServiceSpec
    ) -> elbv2.ApplicationListener:
        return load_balancer.add_listener(
            f"{pascal_case(service.name)}Listener",
            port=service.port,
            **self._listener_protocol(),
            default_action=_not_found(),
            open=False,
        )

    def _listener_protocol(self) -> dict:
        settings = self._settings
        if not settings.is_https:
            return {"protocol": elbv2.ApplicationProtocol.HTTP}
        return {
            "protocol": elbv2.ApplicationProtocol.HTTPS,
            "certificates": [elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
            "ssl_policy": elbv2.SslPolicy.RECOMMENDED_TLS,
        }

    def _security_group(self, construct_id: str, description: str) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self._stack, construct_id, vpc=self._vpc, description=description, allow_all_outbound=False
        )

    def _load_balancer(
        self, construct_id: str, security_group: ec2.SecurityGroup, *, internet_facing: bool, log_prefix: str
    ) -> elbv2.ApplicationLoadBalancer:
        load_balancer = elbv2.ApplicationLoadBalancer(
            self._stack,
            construct_id,
            vpc=self._vpc,
            internet_facing=internet_facing,
            vpc_subnets=ec2.SubnetSelection(subnets=self._subnets),
            security_group=security_group,
            idle_timeout=Duration.seconds(self._settings.idle_timeout_seconds),
            drop_invalid_header_fields=True,
            # Strictest would also refuse "acceptable" requests (not RFC 7230 but harmless), which some HTTP/1.1
            # clients send; defensive refuses the ambiguous and severe ones that smuggling needs.
            desync_mitigation_mode=elbv2.DesyncMitigationMode.DEFENSIVE,
            deletion_protection=self._retain,
        )
        # Prepare checks that a service's rule is on this environment's load balancer by this tag.
        Tags.of(load_balancer).add(LOAD_BALANCER_OWNER_TAG, self._name)
        enable_access_logs(load_balancer, self._logs, log_prefix)
        return load_balancer


def _not_found() -> elbv2.ListenerAction:
    return elbv2.ListenerAction.fixed_response(
        404, content_type="application/json", message_body='{"error":"no such route"}'
    )
