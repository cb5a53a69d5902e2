"""`python -m tools.render_manifests ENV [OUTDIR]`: write every service's Kubernetes objects as YAML
for review, without synthesizing. Values that exist only after deployment are shown as
`<placeholders>`; the objects are otherwise exactly those the Services and Rollout stacks apply.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from stacks.common.resource_names import cluster_name, model_bucket_name
from stacks.config.environment import EnvironmentConfig, config_path_for, load_config
from stacks.config.errors import ConfigError
from stacks.rollout.kubernetes_access import rollout_access_objects
from stacks.services.kubernetes_objects import default_deny_policy, namespace_object, service_objects
from stacks.services.placement import placement_for
from stacks.services.render_inputs import DeployTimeValues, ServiceNetwork
from stacks.services.scaling_objects import needs_prometheus_authentication, scaling_objects
from tessera_shared.constants import TRACKS

DEFAULT_OUTDIR = Path("build/manifests")


def review_values(config: EnvironmentConfig, service_name: str, image: str) -> DeployTimeValues:
    return DeployTimeValues(
        image_uri=f"<account>.dkr.ecr.<region>.amazonaws.com/{image}",
        model_bucket=model_bucket_name(config.name, account="<account>", region="<region>"),
        target_group_arns={track: f"<target-group-arn:{service_name}-{track}>" for track in TRACKS},
        network=ServiceNetwork(
            vpc_cidr=config.network.vpc_cidr,
            load_balancer_cidrs=["<load-balancer-subnet-cidr>"],
            endpoint_cidrs=["<endpoint-subnet-cidr>"],
            internal_ports={service.name: service.port for service in config.services if not service.public},
            collector_cidrs=["<private-subnet-cidr>"],
        ),
        region=config.region or "<region>",
        cluster_name=cluster_name(config.name),
        stable_target_group_dimension=f"<targetgroup/{service_name}-stable>",
        load_balancer_dimension="<app/load-balancer>",
    )


def rendered_objects(config: EnvironmentConfig) -> dict[str, list[dict]]:
    """File name -> objects, for the namespace (with its default-deny policy and KEDA's shared objects), the
    rollout function's Role and each service."""
    files = {
        "namespace.yaml": [
            namespace_object(),
            default_deny_policy(),
            *scaling_objects(prometheus=needs_prometheus_authentication(config.services)),
        ],
        "rollout-access.yaml": rollout_access_objects(),
    }
    for placed in config.placed_services:
        service = placed.spec
        files[f"{service.name}.yaml"] = service_objects(
            service,
            placement=placement_for(service, placed.pool),
            values=review_values(config, service.name, f"{service.image.repository}:{service.image.tag}"),
            drain_seconds=config.load_balancer.deregistration_delay_seconds,
        )
    return files


def write_manifests(config: EnvironmentConfig, outdir: Path) -> list[Path]:
    target = outdir / config.name
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, objects in rendered_objects(config).items():
        path = target / name
        path.write_text(yaml.safe_dump_all(objects, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print("usage: python -m tools.render_manifests ENV [OUTDIR]", file=sys.stderr)
        return 2
    try:
        config = load_config(config_path_for(argv[0]))
    except ConfigError as error:
        for problem in error.problems:
            print(f"{error.source}: {problem}", file=sys.stderr)
        return 1
    for path in write_manifests(config, Path(argv[1]) if len(argv) == 2 else DEFAULT_OUTDIR):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
