"""What a rollout may write to a service's tracks, from the records that decide it, never from the event.

Whoever may invoke the rollout function can hand a step any plan, so a plan is a claim, not an authority. The
image a track runs is the registry's: the digest registration recorded for the version, in the service's
repository. The model URI is the version's folder under the service's prefix in the model bucket (the service's
rollout settings). The namespace and the tracks' Deployments follow from the service's name. Prepare builds the
plan from these; every step that writes a track's version checks the plan against them again and refuses a plan
that disagrees, naming the field, before it writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from registry.images import image_reference
from rollout.clients import Clients
from rollout.contract import Plan, ServiceSettings
from rollout.errors import RolloutError
from rollout.ledger import RUNNABLE_STATES
from tessera_shared.constants import NAMESPACE, track_object_name

SHOWN_CHARACTERS = 120  # of a value echoed in an error: a hostile event may carry megabytes


@dataclass(frozen=True)
class VersionArtifacts:
    """What a track runs for one registered version."""

    image: str  # <registry>/<repository>@sha256:...
    image_repository: str  # the repository's name, e.g. tessera/dev/assistant
    image_digest: str
    model_uri: str


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else f"{text[:SHOWN_CHARACTERS]}... ({len(text)} characters)"


def service_settings(clients: Clients, service: str) -> ServiceSettings | None:
    """The service's rollout settings (SSM), or None when it has none."""
    try:
        raw = clients.ssm.get_parameter(Name=f"{clients.settings_prefix}{service}")["Parameter"]["Value"]
    except clients.ssm.exceptions.ParameterNotFound:
        return None
    return ServiceSettings.from_json(json.loads(raw), where="settings")


def registered_artifacts(settings: ServiceSettings, record: dict[str, Any], version: str) -> VersionArtifacts:
    """The image (by the digest registration recorded) and model URI of a version; ValueError when the record
    holds no digest or names another repository than the service's settings."""
    host, _, repository = settings.image_repository_uri.partition("/")
    recorded = record.get("image")  # repository:tag as the version's manifest named it (checked at registration)
    if recorded and recorded.rsplit(":", 1)[0] != repository:
        raise ValueError(f"the registry recorded the image {recorded!r}, which is not in the repository {repository}")
    digest = record.get("image_digest")
    return VersionArtifacts(
        image=image_reference(f"{host}/{repository}", digest),
        image_repository=repository,
        image_digest=str(digest),
        model_uri=f"s3://{settings.model_bucket}/{settings.model_prefix}{version}/",
    )


def authorised_artifacts(plan: Plan, clients: Clients) -> VersionArtifacts:
    """What the plan's version may run, read again from the registry and the service's settings; a plan that
    disagrees on any field a track's version is written with is refused."""
    settings = service_settings(clients, plan.service)
    if settings is None:
        raise RolloutError(f"plan.service: {shown(plan.service)} has no rollout settings")
    record = clients.ledger.version(plan.service, plan.version)
    if record is None or record["state"] not in RUNNABLE_STATES:
        state = record["state"] if record else "not in the registry"
        raise RolloutError(f"plan.version: {plan.service} version {shown(plan.version)} is {state}; it may not run")
    try:
        artifacts = registered_artifacts(settings, record, plan.version)
    except ValueError as error:
        raise RolloutError(f"plan.version: {plan.service} version {plan.version}: {error}") from None
    registry = f"the registry records for {plan.service} version {plan.version}"
    expected = {
        "namespace": (NAMESPACE, "the namespace of every service"),
        "stable_deployment": (track_object_name(plan.service, "stable"), f"{plan.service}'s stable track"),
        "canary_deployment": (track_object_name(plan.service, "canary"), f"{plan.service}'s canary track"),
        "image": (artifacts.image, f"what {registry}"),
        "image_repository": (artifacts.image_repository, f"what {registry}"),
        "image_digest": (artifacts.image_digest, f"what {registry}"),
        "model_uri": (artifacts.model_uri, f"where the service's settings place version {plan.version}"),
    }
    problems = [
        f"plan.{field}: {shown(getattr(plan, field))} is not {value!r}, {source}"
        for field, (value, source) in expected.items()
        if getattr(plan, field) != value
    ]
    if problems:
        raise RolloutError("refused, the plan disagrees with the records that decide what runs: " + "; ".join(problems))
    return artifacts
