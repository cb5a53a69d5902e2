"""The track owner: the CloudFormation custom resource that applies each service's track objects (the
stable and canary Deployments and stable's autoscaler: an HPA, or a KEDA ScaledObject) so that a
`cdk deploy` never undoes the rollout engine's work.

Config owns what a service is (probes, resources, env, security context) and where it first runs;
after the first deploy the rollout engine owns what each track runs (image, model version) and where
(its placement: node selector, tolerations, scheduler, accelerator resources, which a change of chip
moves) and, while a rollout holds the service's lock, the canary and stable's autoscaler floor. CDK's kubectl handler
applies manifests with a client-side `kubectl apply`, which sets every field the manifest names back
to the manifest's value: a re-applied Deployment would put the config's old model version back on
stable after a promotion. So these objects are not KubernetesManifests; this handler merges the
config's rendering with the engine-owned fields read from the cluster and the registry, through the
same change function the rollout steps use (rollout.kube.deployments.version_change), and writes the result.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from rollout.image_digests import ImageResolver, ecr_resolver, pin_images
from rollout.kube.client import AUTOSCALERS, DEPLOYMENTS, KEDA_SCALED_OBJECTS, KubeClient
from rollout.kube.deployments import placement_change, running_placement, version_change
from rollout.ledger import Ledger
from rollout.track_objects import check_names, check_objects, image_repository, request_scope
from tessera_shared import constants as shared

logger = Logger(service=shared.TRACK_OWNER_FUNCTION_SERVICE)
KINDS = {"Deployment": DEPLOYMENTS, shared.HPA_KIND: AUTOSCALERS, shared.SCALED_OBJECT_KIND: KEDA_SCALED_OBJECTS}
# The field that holds the stable track's floor, per autoscaler kind.
FLOOR_FIELDS = {shared.HPA_KIND: "minReplicas", shared.SCALED_OBJECT_KIND: "minReplicaCount"}


def merged(rendered: dict[str, Any], live: dict[str, Any] | None, *, rollout_running: bool) -> dict[str, Any] | None:
    """What to store for one rendered track object given the live one; None leaves the live one alone.

    - first deploy (nothing live): the config's rendering, as it is;
    - a Deployment: the config's spec, running what the live one runs (image, model version) where it runs
      it (the live placement: a service a rollout moved to another chip stays there), and for stable the
      live replica count (its autoscaler's to set, not the config's);
    - the canary while a rollout holds the lock: untouched (its size and version are the rollout's);
    - stable's autoscaler while a rollout holds the lock: the config's, but with the floor the rollout set.
    """
    if live is None:
        return copy.deepcopy(rendered)
    desired = copy.deepcopy(rendered)
    if rendered["kind"] in FLOOR_FIELDS:
        floor = FLOOR_FIELDS[rendered["kind"]]
        if rollout_running and floor in live["spec"]:
            desired["spec"][floor] = live["spec"][floor]
        return desired
    track = rendered["metadata"].get("labels", {}).get(shared.TRACK_LABEL)
    if track == "canary" and rollout_running:
        return None
    image, version, uri = running_version(live)
    if image:
        version_change(image, version, uri)(desired)
        placement_change(running_placement(live))(desired)
    if "replicas" not in rendered["spec"]:
        desired["spec"]["replicas"] = live["spec"].get("replicas", 1)
    return desired


def _no_longer_rendered(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = {(obj["kind"], obj["metadata"]["name"]) for obj in current}
    return [obj for obj in previous if (obj["kind"], obj["metadata"]["name"]) not in kept]


def running_version(deployment: dict[str, Any]) -> tuple[str, str, str]:
    """(image, MODEL_VERSION, MODEL_S3_URI) of the Deployment's serving container."""
    containers = deployment["spec"]["template"]["spec"].get("containers", [])
    server: dict[str, Any] = next((c for c in containers if c.get("name") == shared.SERVING_CONTAINER), {})
    env = {entry.get("name"): entry.get("value", "") for entry in server.get("env", [])}
    return server.get("image", ""), env.get("MODEL_VERSION", ""), env.get("MODEL_S3_URI", "")


def parse_objects(raw: object, field: str) -> list[dict[str, Any]]:
    """The track objects as the Services stack sends them: one JSON string (CloudFormation would hand over a
    list with every number and boolean turned into a string, which the API server refuses)."""
    if not isinstance(raw, str):
        raise ValueError(f"{field}: expected one JSON string of Kubernetes objects, got {type(raw).__name__}")
    try:
        objects = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"{field}: not valid JSON ({error})") from None
    if not isinstance(objects, list):
        raise ValueError(f"{field}: expected a JSON list of Kubernetes objects, got {type(objects).__name__}")
    for index, obj in enumerate(objects):
        kind = obj.get("kind") if isinstance(obj, dict) else None
        if kind not in KINDS:
            raise ValueError(f"{field}[{index}].kind: expected one of {sorted(KINDS)}, got {kind!r}")
        name = obj.get("metadata", {}).get("name") if isinstance(obj.get("metadata"), dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{field}[{index}].metadata.name: expected a non-empty string")
    return objects


def on_event(
    event: dict[str, Any], kube: KubeClient, ledger: Ledger, environment: Mapping[str, str], *, images: ImageResolver
) -> dict[str, Any]:
    """A CloudFormation custom resource event (through CDK's provider framework, or sent by anyone allowed to invoke
    the function: it acts only on its service's own track objects, rollout.track_objects). `environment`: the
    function's environment variables, which name each service's image repository; `images` pins a tag to its
    digest (rollout.image_digests)."""
    props = event["ResourceProperties"]
    namespace, service = request_scope(props, "ResourceProperties")
    objects = parse_objects(props["Objects"], "ResourceProperties.Objects")
    physical_id = f"{namespace}/{service}/tracks"
    if event["RequestType"] == "Delete":
        check_names(objects, service, "ResourceProperties.Objects")
        for obj in reversed(objects):
            kube.delete(KINDS[obj["kind"]], namespace, obj["metadata"]["name"])
        return {"PhysicalResourceId": physical_id}
    check_objects(objects, service, image_repository(environment, service), "ResourceProperties.Objects")
    pin_images(objects, images)
    if event["RequestType"] == "Update":
        # What config stopped rendering goes first: a ScaledObject left behind would keep its KEDA-made HPA
        # fighting the CPU HPA that replaces it.
        previous = parse_objects(event["OldResourceProperties"]["Objects"], "OldResourceProperties.Objects")
        check_names(previous, service, "OldResourceProperties.Objects")
        for obj in _no_longer_rendered(previous, objects):
            kube.delete(KINDS[obj["kind"]], namespace, obj["metadata"]["name"])
    rollout_running = ledger.locks.holder(service) is not None
    applied: list[str] = []
    left_alone: list[str] = []
    for rendered in objects:
        name = rendered["metadata"]["name"]
        decisions: list[bool] = []  # the last merge decides: it ran on the object the write replaced

        def merge(
            live: dict[str, Any] | None, rendered: dict[str, Any] = rendered, decisions: list[bool] = decisions
        ) -> dict[str, Any] | None:
            desired = merged(rendered, live, rollout_running=rollout_running)
            decisions.append(desired is not None)
            return desired

        kube.apply(KINDS[rendered["kind"]], namespace, name, merge)
        (applied if decisions and decisions[-1] else left_alone).append(name)
        if rollout_running and rendered["kind"] in FLOOR_FIELDS:
            # The floor config now wants at rest: the rollout returns stable's autoscaler to it when it ends.
            ledger.locks.record_deploy_floor(service, int(rendered["spec"].get(FLOOR_FIELDS[rendered["kind"]], 1)))
    logger.info("tracks applied", extra={"service": service, "applied": applied, "left_alone": left_alone})
    return {"PhysicalResourceId": physical_id, "Data": {"Applied": ",".join(applied)}}


@cache
def _clients() -> tuple[KubeClient, Ledger, Any]:
    import boto3

    from rollout.kube.token import eks_token

    sts = boto3.client("sts")
    cluster = os.environ[shared.ENV_CLUSTER_NAME]
    kube = KubeClient(
        os.environ[shared.ENV_CLUSTER_ENDPOINT],
        lambda: eks_token(sts, cluster),
        ca_data=os.environ.get(shared.ENV_CLUSTER_CA),
    )
    ledger = Ledger(boto3.client("dynamodb"), os.environ[shared.ENV_REGISTRY_TABLE])
    return kube, ledger, boto3.client("ecr")


@logger.inject_lambda_context(clear_state=True)
def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    kube, ledger, ecr = _clients()
    # A resolver per event: what a tag points to is read at each deploy, never remembered across them.
    return on_event(event, kube, ledger, os.environ, images=ecr_resolver(ecr))
