"""What the nodes of a synthesized environment pull, and whether the Network template lets each pull through.

Images come from three places: the Helm releases of the Cluster stack (each chart's images at its pinned version,
stacks/cluster/data/images.yaml, with Tessera's values applied), the EKS add-ons (EKS's own registry in the region),
and the pod templates of every Kubernetes object the stacks apply (the services' Deployments name their ECR
repositories). stacks/network/image_registries.py says which connections a pull from each registry makes; here
each connection is checked against the resources of the Network template: the route to a NAT gateway, the ECR
interface endpoints and their policies, and the S3 gateway endpoint's route tables and policy."""

from __future__ import annotations

import json
from dataclasses import dataclass

from stacks.cluster.image_inventory import NotInventoriedError, load_inventory
from stacks.network.image_registries import Caller, Hop, Route, eks_addon_registry, pull_hops, registry_of
from tests.kubernetes_objects import MANIFEST_RESOURCE, TRACKS_RESOURCE
from tests.security.endpoint_policies import PseudoParameters, Request, allows, resolve
from tests.synth import SynthesizedEnvironment

HELM_RESOURCE = "Custom::AWSCDK-EKS-HelmChart"
ANOTHER_ACCOUNT = "210987654321"  # whoever signs a registry's presigned URLs: never this account
NODE_SUBNET_GROUP = "private"  # nodes, pods and Lambdas (stacks/network/stack.py)
POD_CONTAINER_KEYS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class PulledImage:
    component: str
    reference: str

    @property
    def host(self) -> str:
        return registry_of(self.reference)


def pulled_images(env: SynthesizedEnvironment, pseudo: PseudoParameters) -> list[PulledImage]:
    return [*chart_images(env, pseudo), *addon_images(env, pseudo), *object_images(env, pseudo)]


def chart_releases(env: SynthesizedEnvironment) -> set[tuple[str, str]]:
    return {
        (chart["Properties"]["Chart"], chart["Properties"]["Version"])
        for chart in env.resources("Cluster", HELM_RESOURCE).values()
    }


def chart_images(env: SynthesizedEnvironment, pseudo: PseudoParameters) -> list[PulledImage]:
    inventory = load_inventory()
    images = []
    for chart in env.resources("Cluster", HELM_RESOURCE).values():
        properties = resolve(chart["Properties"], pseudo)
        values = json.loads(properties.get("Values") or "{}")
        entry = inventory.chart(properties["Chart"], properties["Version"])
        images += [PulledImage(component, reference) for component, reference in entry.pulled_images(values)]
    return images


def addon_images(env: SynthesizedEnvironment, pseudo: PseudoParameters) -> list[PulledImage]:
    inventory = load_inventory()
    images = []
    for addon in env.resources("Cluster", "AWS::EKS::Addon").values():
        name = addon["Properties"]["AddonName"]
        if name not in inventory.addons:
            raise NotInventoriedError(f"add-on {name}: not listed in stacks/cluster/data/images.yaml")
        registry = eks_addon_registry(pseudo.region)
        images.append(PulledImage(f"add-on {name}", f"{registry}/{name}:{addon['Properties']['AddonVersion']}"))
    return images


def object_images(env: SynthesizedEnvironment, pseudo: PseudoParameters) -> list[PulledImage]:
    """Images in the pod templates of every Kubernetes object any stack applies (manifests and track objects)."""
    images = []
    for path in env.template_paths:
        for resource in json.loads(path.read_text())["Resources"].values():
            properties = resource["Properties"]
            if resource["Type"] == MANIFEST_RESOURCE:
                objects = json.loads(resolve(properties["Manifest"], pseudo))  # type: ignore[arg-type]
            elif resource["Type"] == TRACKS_RESOURCE:
                objects = json.loads(resolve(properties["Objects"], pseudo))  # type: ignore[arg-type]
            else:
                continue
            for obj in objects:  # type: ignore[union-attr]
                name = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
                images += [PulledImage(name, image) for image in _container_images(obj)]
    return images


def _container_images(value: object) -> list[str]:
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in POD_CONTAINER_KEYS and isinstance(item, list):
                found += [container["image"] for container in item]
            else:
                found += _container_images(item)
    elif isinstance(value, list):
        for item in value:
            found += _container_images(item)
    return found


class NetworkPaths:
    """The node subnets' ways out, as one Network template (resolved for one account and region) builds them."""

    def __init__(self, template: dict, pseudo: PseudoParameters) -> None:
        self.pseudo = pseudo
        self.resources = {key: resolve(value, pseudo) for key, value in template["Resources"].items()}
        self.node_route_tables = self._node_route_tables()

    def problems(self, hop: Hop) -> list[str]:
        if hop.route is Route.NAT:
            return self._nat_problems()
        if hop.route is Route.ECR_ENDPOINTS:
            return self._ecr_problems(hop)
        return self._s3_problems(hop)

    def _of_type(self, resource_type: str) -> dict[str, dict]:
        return {key: r["Properties"] for key, r in self.resources.items() if r["Type"] == resource_type}

    def _node_route_tables(self) -> set[str]:
        subnets = {
            key
            for key, subnet in self._of_type("AWS::EC2::Subnet").items()
            if {"Key": "aws-cdk:subnet-name", "Value": NODE_SUBNET_GROUP} in subnet["Tags"]
        }
        return {
            association["RouteTableId"]["Ref"]
            for association in self._of_type("AWS::EC2::SubnetRouteTableAssociation").values()
            if association["SubnetId"]["Ref"] in subnets
        }

    def _nat_problems(self) -> list[str]:
        nat_gateways = set(self._of_type("AWS::EC2::NatGateway"))
        routed = {
            route["RouteTableId"]["Ref"]
            for route in self._of_type("AWS::EC2::Route").values()
            if route.get("DestinationCidrBlock") == "0.0.0.0/0"
            and route.get("NatGatewayId", {}).get("Ref") in nat_gateways
        }
        missing = sorted(self.node_route_tables - routed)
        if not self.node_route_tables or missing:
            return [f"no default route to a NAT gateway from the node route tables {missing}"]
        return []

    def _endpoint(self, service: str, endpoint_type: str = "Interface") -> dict | None:
        name = f"com.amazonaws.{self.pseudo.region}.{service}"
        return next(
            (
                e
                for e in self._of_type("AWS::EC2::VPCEndpoint").values()
                if e.get("ServiceName") == name and e.get("VpcEndpointType", "Gateway") == endpoint_type
            ),
            None,
        )

    def _ecr_problems(self, hop: Hop) -> list[str]:
        registry_account = hop.host.split(".")[0]
        repository = f"arn:{self.pseudo.partition}:ecr:{self.pseudo.region}:{registry_account}:repository/any"
        calls = {
            "ecr.api": [("ecr:GetAuthorizationToken", "*")],
            "ecr.dkr": [("ecr:BatchGetImage", repository), ("ecr:GetDownloadUrlForLayer", repository)],
        }
        problems = []
        for service, requests in calls.items():
            endpoint = self._endpoint(service)
            if endpoint is None or not endpoint.get("PrivateDnsEnabled"):
                problems.append(f"no {service} interface endpoint with private DNS")
                continue
            for action, resource in requests:
                if not allows(endpoint["PolicyDocument"], Request(action, resource, self.pseudo.account)):
                    problems.append(f"the {service} endpoint's policy refuses {action} by {Caller.NODE}")
        return problems

    def _s3_problems(self, hop: Hop) -> list[str]:
        """The regional S3 names resolve to the interface endpoint where its private DNS serves every resolver
        (the VPC's too); anything else that reaches S3's public addresses goes through the gateway's routes."""
        gateway = self._endpoint("s3", "Gateway")
        if gateway is None:
            return ["no S3 gateway endpoint"]
        tables = {table["Ref"] for table in gateway["RouteTableIds"]}
        if not self.node_route_tables <= tables:
            return [f"the S3 gateway endpoint misses the node route tables {sorted(self.node_route_tables - tables)}"]
        interface = self._endpoint("s3")
        answering = {"gateway": gateway}
        if interface is not None and interface.get("PrivateDnsEnabled"):
            answering["interface"] = interface
        caller = None if hop.caller is Caller.ANONYMOUS else ANOTHER_ACCOUNT
        arn = f"arn:{self.pseudo.partition}:s3:::{hop.bucket}/containers/images/sha256:0f1e2d3c"
        return [
            f"the S3 {kind} endpoint's policy refuses s3:GetObject on {arn} signed by {hop.caller}"
            for kind, endpoint in answering.items()
            if not allows(endpoint["PolicyDocument"], Request("s3:GetObject", arn, caller))
        ]


def pull_problems(
    env: SynthesizedEnvironment, pseudo: PseudoParameters, network_template: dict | None = None
) -> list[str]:
    """One line per connection of a pull that the environment's network (or `network_template`) refuses."""
    network = NetworkPaths(network_template or env.template_json("Network"), pseudo)
    problems = []
    for image in pulled_images(env, pseudo):
        for hop in pull_hops(image.host, pseudo.region):
            problems += [
                f"{pseudo.region}: {image.component} ({image.reference}): {hop.what} from {hop.host} through the "
                f"{hop.route}: {problem}"
                for problem in network.problems(hop)
            ]
    return problems
