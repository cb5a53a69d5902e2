"""The environment's Amazon Managed Service for Prometheus workspace and its managed collector (scraper) for the
cluster: no agent of ours runs in the cluster. Built only when a service declares `metrics`.

Facts this follows (AMP user guide, "Using an AWS managed collector" / AMP-collector-how-to):
- the scraper takes the cluster's ARN, at least two subnets in two AZs and a security group ("should be set to the
  security group and subnets for the cluster"); it places an ENI per subnet and scrapes through them; the cluster's
  endpoint must include private access (Tessera's always does) and its VPC DNS;
- its configuration is a base64-encoded Prometheus YAML (`ConfigurationBlob`); no scrape interval under 30 s;
- Kubernetes access: on a cluster with authentication mode API (Tessera's: access entries only), a scraper created
  through the API "will automatically have the correct access entry policy created for you" (section "Configure
  Amazon EKS for scraper access with access entries"). An access entry of our own for the same role would collide
  with it (one access entry per principal), and the manual aws-auth ClusterRole is for ConfigMap clusters only, so
  Tessera creates neither (tests/stacks/test_managed_prometheus.py asserts it).

Encryption: AWS-owned. A workspace under a customer managed key can take a managed collector only through the
scraper's RoleConfiguration (a source and a target role of our own instead of the service-linked role, user guide
section "Creating scraper for workspaces enabled with customer managed keys"). The guide gives those roles' trust
conditions on the scraper's own ARN (`aws:SourceArn`, `sts:ExternalId`), which exists only once the scraper does,
and not the key permissions the target role needs; until both are verified the workspace keeps the service's own
encryption (docs/services.md says so).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Fn, Stack
from aws_cdk import aws_aps as aps
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from stacks.cluster.scrape_config import metrics_port, metrics_services, scrape_configuration_yaml
from stacks.config.services import ServiceSpec


@dataclass(frozen=True)
class PrometheusWorkspace:
    """What other stacks use of the workspace (CloudFormation references across stacks)."""

    arn: str
    # The workspace's Prometheus endpoint, `https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/`: the
    # rollout judge appends `api/v1/query` (stacks/rollout/settings.py).
    endpoint: str
    # The same without the trailing slash: KEDA's prometheus scaler appends `/api/v1/query` itself
    # (pkg/scalers/prometheus_scaler.go at v2.20.2).
    server_address: str
    region: str


def workspace_alias(environment_name: str) -> str:
    return f"tessera-{environment_name}"


class ManagedPrometheus(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        cluster: eks.Cluster,
        vpc: ec2.IVpc,
        subnets: Sequence[ec2.ISubnet],
        services: Sequence[ServiceSpec],
        scrape_interval_seconds: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        alias = workspace_alias(environment_name)
        self.workspace = aps.CfnWorkspace(self, "Workspace", alias=alias)
        self.security_group = self._security_group(cluster, vpc, services)
        blob = scrape_configuration_yaml(services, interval_seconds=scrape_interval_seconds)
        self.scraper = aps.CfnScraper(
            self,
            "Scraper",
            alias=alias,
            source=aps.CfnScraper.SourceProperty(
                eks_configuration=aps.CfnScraper.EksConfigurationProperty(
                    cluster_arn=cluster.cluster_arn,
                    subnet_ids=[subnet.subnet_id for subnet in subnets],
                    security_group_ids=[self.security_group.security_group_id],
                )
            ),
            destination=aps.CfnScraper.DestinationProperty(
                amp_configuration=aps.CfnScraper.AmpConfigurationProperty(workspace_arn=self.workspace.attr_arn)
            ),
            scrape_configuration=aps.CfnScraper.ScrapeConfigurationProperty(
                configuration_blob=base64.b64encode(blob.encode()).decode()
            ),
        )
        # The scraper discovers pods through the cluster's API from the moment it exists.
        self.scraper.node.add_dependency(cluster)
        self.published = PrometheusWorkspace(
            arn=self.workspace.attr_arn,
            endpoint=self.workspace.attr_prometheus_endpoint,
            server_address=Fn.join(
                "",
                [
                    f"https://aps-workspaces.{stack.region}.{stack.url_suffix}/workspaces/",
                    self.workspace.attr_workspace_id,
                ],
            ),
            region=stack.region,
        )

    def _security_group(
        self, cluster: eks.Cluster, vpc: ec2.IVpc, services: Sequence[ServiceSpec]
    ) -> ec2.SecurityGroup:
        """The scraper's ENIs reach the Kubernetes API (service discovery; the private endpoint answers in the
        cluster security group) and the serving pods' metrics ports (pod IPs sit behind the cluster security group
        too), nothing else; the cluster security group admits exactly that from it."""
        group = ec2.SecurityGroup(
            self,
            "ScraperSecurityGroup",
            vpc=vpc,
            description="Tessera managed Prometheus collector: the Kubernetes API and the serving pods metrics ports",
            allow_all_outbound=False,
        )
        cluster_group = ec2.SecurityGroup.from_security_group_id(
            self, "ClusterSecurityGroup", cluster.cluster_security_group_id, allow_all_outbound=False
        )
        ports = {443: "the Kubernetes API (pod discovery)"}
        for port in sorted({metrics_port(service) for service in metrics_services(services)}):
            ports[port] = f"the serving pods metrics endpoints on {port}"
        for port, what in ports.items():
            group.connections.allow_to(cluster_group, ec2.Port.tcp(port), f"Managed Prometheus collector to {what}")
        return group
