"""Network stack: the VPC every other Tessera component runs in.

Public subnets hold the NAT gateways; private subnets (large, because the VPC CNI gives every pod a
VPC address) hold nodes, pods and Lambdas. Two small groups of subnets of their own give the services'
NetworkPolicies addresses to name that no pod or node has: the load balancer's (public when it is
internet-facing, else without any route out) and the interface endpoints'. Image and model pulls use
VPC endpoints (S3 gateway; ECR, STS, Logs, EC2 interface), so multi-GB transfers do not pay NAT data
processing; images from internet registries come through NAT (docs/images.md says which goes where).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Fn, Stack, Tags, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.common.environment_scope import EnvironmentScope
from stacks.common.key_policies import named_users_policy
from stacks.common.log_retention import RETENTION_BY_DAYS
from stacks.common.published_values import PublishedValue, publish_values
from stacks.common.resource_names import cluster_name
from stacks.config.network import NetworkConfig
from stacks.network.image_registries import gateway_layer_buckets
from tessera_shared.constants import KARPENTER_DISCOVERY_TAG

PUBLIC_SUBNET_MASK = 24
PRIVATE_SUBNET_MASK = 19
# An ALB needs subnets of at least a /27 with 8 free addresses to scale (ELB user guide, "Subnets for your load
# balancer"); a /26 leaves it room. Interface endpoints take one address per endpoint and subnet.
LOAD_BALANCER_SUBNET_MASK = 26
ENDPOINT_SUBNET_MASK = 26
PUBLIC_GROUP = "public"
PRIVATE_GROUP = "private"
LOAD_BALANCER_GROUP = "load-balancer"
ENDPOINT_GROUP = "endpoints"

INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Ec2": ec2.InterfaceVpcEndpointAwsService.EC2,
}


@dataclass(frozen=True)
class ServiceSubnets:
    """The subnets the Services stack places its load balancer in and names in its NetworkPolicies."""

    vpc_cidr: str  # the literal from config
    load_balancer: list[ec2.ISubnet]
    endpoints: list[ec2.ISubnet]


class NetworkStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: NetworkConfig,
        environment: EnvironmentScope,
        internet_facing_load_balancer: bool,
        **stack_props: object,
    ) -> None:
        super().__init__(scope, construct_id, **stack_props)

        self.logs_key = self._logs_key(environment)
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=RETENTION_BY_DAYS[settings.flow_log_retention_days],
            removal_policy=environment.removal_policy,
        )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(settings.vpc_cidr),
            availability_zones=_availability_zones(settings),
            nat_gateways=settings.nat_gateways,
            nat_gateway_subnets=ec2.SubnetSelection(subnet_group_name=PUBLIC_GROUP),
            # New groups go last: CDK allocates CIDRs in this order, so existing subnets keep theirs.
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name=PUBLIC_GROUP, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_SUBNET_MASK
                ),
                ec2.SubnetConfiguration(
                    name=PRIVATE_GROUP, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=PRIVATE_SUBNET_MASK
                ),
                ec2.SubnetConfiguration(
                    name=LOAD_BALANCER_GROUP,
                    subnet_type=(
                        ec2.SubnetType.PUBLIC if internet_facing_load_balancer else ec2.SubnetType.PRIVATE_ISOLATED
                    ),
                    cidr_mask=LOAD_BALANCER_SUBNET_MASK,
                ),
                ec2.SubnetConfiguration(
                    name=ENDPOINT_GROUP, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=ENDPOINT_SUBNET_MASK
                ),
            ],
            restrict_default_security_group=True,
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group, self._flow_log_role()),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        # One security group for all interface endpoints: HTTPS from inside the VPC. The CIDR is the
        # literal from config (not the VPC's CidrBlock attribute) so that cdk-nag can evaluate the rule.
        endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointsSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from the VPC to the interface VPC endpoints",
            allow_all_outbound=False,
        )
        endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(settings.vpc_cidr), ec2.Port.tcp(443), "HTTPS from inside the VPC"
        )
        for endpoint_id, service in INTERFACE_ENDPOINTS.items():
            endpoint = self.vpc.add_interface_endpoint(
                endpoint_id,
                service=service,
                private_dns_enabled=True,
                open=False,
                security_groups=[endpoint_security_group],
                subnets=ec2.SubnetSelection(subnet_group_name=ENDPOINT_GROUP),
            )
            endpoint.add_to_policy(_this_account_only())
        # Pods reach S3 without a route out of the VPC: with private DNS for every resolver, S3's regional names
        # answer from this endpoint's addresses in the endpoint subnets, which the NetworkPolicies admit. The
        # gateway stays for whatever still resolves to S3's public addresses.
        s3_interface = self.vpc.add_interface_endpoint(
            "S3Interface",
            service=ec2.InterfaceVpcEndpointAwsService.S3,
            private_dns_enabled=True,
            private_dns_only_for_inbound_resolver_endpoint=ec2.VpcEndpointPrivateDnsOnlyForInboundResolverEndpoint.ALL_RESOLVERS,
            open=False,
            security_groups=[endpoint_security_group],
            subnets=ec2.SubnetSelection(subnet_group_name=ENDPOINT_GROUP),
        )
        for s3_endpoint in (self.vpc.node.find_child("S3"), s3_interface):
            for statement in self._s3_endpoint_policy():
                s3_endpoint.add_to_policy(statement)
        public_subnets = self._group(PUBLIC_GROUP)
        self.service_subnets = ServiceSubnets(
            vpc_cidr=settings.vpc_cidr,
            load_balancer=self._group(LOAD_BALANCER_GROUP),
            endpoints=self._group(ENDPOINT_GROUP),
        )
        # The AWS Load Balancer Controller's subnet discovery tag, should anything ever ask it for a load balancer
        # (CDK's EKS cluster puts these on every public and private subnet too).
        role_tag = "kubernetes.io/role/elb" if internet_facing_load_balancer else "kubernetes.io/role/internal-elb"
        for subnet in self.service_subnets.load_balancer:
            Tags.of(subnet).add(role_tag, "1")
        for subnet in self.vpc.private_subnets:
            # Karpenter's node classes launch nodes into the subnets carrying this tag.
            Tags.of(subnet).add(KARPENTER_DISCOVERY_TAG, cluster_name(environment.name))

        publish_values(
            self,
            parameter_prefix=environment.parameter_prefix,
            values={
                "network/vpc-id": PublishedValue(self.vpc.vpc_id, "ID of the Tessera VPC"),
                "network/vpc-cidr": PublishedValue(self.vpc.vpc_cidr_block, "IPv4 CIDR of the Tessera VPC"),
                "network/private-subnet-ids": PublishedValue(
                    Fn.join(",", [subnet.subnet_id for subnet in self.vpc.private_subnets]),
                    "Comma-separated private subnet IDs (nodes, pods, Lambdas)",
                ),
                "network/public-subnet-ids": PublishedValue(
                    Fn.join(",", [subnet.subnet_id for subnet in public_subnets]),
                    "Comma-separated public subnet IDs (NAT gateways)",
                ),
                "network/load-balancer-subnet-ids": PublishedValue(
                    Fn.join(",", [subnet.subnet_id for subnet in self.service_subnets.load_balancer]),
                    "Comma-separated subnet IDs of the services' load balancer (nothing else is placed there)",
                ),
            },
        )

    def _s3_endpoint_policy(self) -> list[iam.PolicyStatement]:
        """Both S3 endpoints carry all of the region's S3 traffic, image layers included, and those requests are not
        signed by our principals: ECR's are presigned by ECR (ECR user guide, "Minimum Amazon S3 gateway endpoint
        policy"), registry.k8s.io's are anonymous redirects to its bucket in the region (kubernetes/registry.k8s.io,
        cmd/archeio). Read-only, on those buckets only (image_registries.py; docs/images.md)."""
        statements = [_this_account_only()]
        for layers in gateway_layer_buckets(self.region, region_known=not Token.is_unresolved(self.region)):
            statements.append(
                iam.PolicyStatement(
                    sid=layers.sid,
                    principals=[iam.AnyPrincipal()],
                    actions=["s3:GetObject"],
                    resources=[f"arn:{self.partition}:s3:::{bucket}/*" for bucket in layers.buckets],
                )
            )
        return statements

    def _group(self, name: str) -> list[ec2.ISubnet]:
        return self.vpc.select_subnets(subnet_group_name=name).subnets

    def _logs_key(self, environment: EnvironmentScope) -> kms.Key:
        """The key of every Tessera log group (the app builder applies it), separate from the artifacts key: who
        may read logs and who may read models and the registry are different people."""
        key = kms.Key(
            self,
            "LogsKey",
            description=f"Tessera {environment.name}: encrypts the CloudWatch Logs log groups",
            alias=f"alias/tessera/{environment.name}/logs",
            enable_key_rotation=True,
            removal_policy=environment.removal_policy,
            # Only CloudWatch Logs uses it (the statement below), for this account's log groups.
            policy=named_users_policy(self, users=[], via_services=[]),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": self._log_groups_arn()}},
            )
        )
        return key

    def _log_groups_arn(self) -> str:
        return f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:*"

    def _flow_log_role(self) -> iam.Role:
        """The flow-log service may assume it only for this account's flow logs (confused-deputy guard)."""
        return iam.Role(
            self,
            "FlowLogsRole",
            description="VPC flow logs delivery to CloudWatch Logs",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{self.partition}:ec2:{self.region}:{self.account}:vpc-flow-log/*"
                    },
                },
            ),
        )


def _this_account_only() -> iam.PolicyStatement:
    """Endpoint policy: only principals of this account may use the endpoint (credentials of another account,
    for example to copy data to its buckets, are refused at the endpoint)."""
    return iam.PolicyStatement(
        sid="ThisAccountOnly",
        principals=[iam.AnyPrincipal()],
        actions=["*"],
        resources=["*"],
        conditions={"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}},
    )


def _availability_zones(settings: NetworkConfig) -> list[str]:
    """Explicit AZs from config, else the region's first `az_count` AZs resolved at deploy time.

    Fn::GetAZs keeps the synth free of AWS look-ups and, unlike an environment-agnostic stack's
    default, is not limited to two zones.
    """
    if settings.availability_zones is not None:
        return list(settings.availability_zones)
    return [Fn.select(index, Fn.get_azs()) for index in range(settings.az_count)]
