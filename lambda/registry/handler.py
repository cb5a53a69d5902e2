"""The `register` Lambda: EventBridge S3 "Object Created" events for manifests, or direct calls."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from registry.intake import Ignored, parse_request
from registry.store import RegistryStore
from tessera_shared import constants as shared

logger = Logger(service=shared.REGISTER_FUNCTION_SERVICE)
metrics = Metrics(namespace=shared.METRICS_NAMESPACE, service=shared.REGISTER_FUNCTION_SERVICE)


class AnnouncementError(Exception):
    """EventBridge did not take the announcement; the Lambda fails so that its retry sends it again."""


@cache
def _store() -> RegistryStore:
    return RegistryStore(boto3.client("dynamodb"), os.environ[shared.ENV_REGISTRY_TABLE])


@cache
def _registrar() -> Any:
    """Built once per execution environment; the catalog is read from SSM at the first request.
    The registrar (and pydantic, which the manifest model needs) is imported here: an ignored
    event never pays for it."""
    from registry.catalog import Catalog
    from registry.registrar import Registrar

    catalog_text = boto3.client("ssm").get_parameter(Name=os.environ[shared.ENV_CATALOG_PARAMETER])["Parameter"][
        "Value"
    ]
    return Registrar(
        s3=boto3.client("s3"),
        ecr=boto3.client("ecr"),
        store=_store(),
        catalog=Catalog.from_json(catalog_text),
        bucket=os.environ[shared.ENV_MODEL_BUCKET],
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handle(event: Any, context: Any) -> dict[str, Any]:
    request = parse_request(event, bucket=os.environ[shared.ENV_MODEL_BUCKET])
    if isinstance(request, Ignored):
        return _ignore(event, context, request.reason, request.key)
    logger.append_keys(service_name=request.service, version=request.version, source=request.source)
    registrar = _registrar()
    if not registrar.knows(request.service):
        # A service this environment does not have: nothing is stored under its name.
        return _ignore(event, context, registrar.unknown_service_reason(request.service), request.key)
    outcome = registrar.register(request.service, request.version)
    logger.info(
        "registration decided",
        extra={
            "outcome": outcome.outcome,
            "state": outcome.state,
            "reasons": outcome.reasons,
            "changed": outcome.changed,
        },
    )
    metrics.add_metric(name=f"Registration{_pascal(outcome.outcome)}", unit=MetricUnit.Count, value=1)
    # Only a registration is announced: a conflicting upload answers REJECTED about a REGISTERED version.
    if outcome.outcome == shared.REGISTERED and outcome.state == shared.REGISTERED and not outcome.announced:
        _announce(outcome.service, outcome.version)
        _store().mark_announced(outcome.service, outcome.version)
    answer: dict[str, Any] = outcome.as_dict()
    return answer


def _ignore(event: Any, context: Any, reason: str, key: str | None) -> dict[str, Any]:
    """Not a manifest we can place: count it (the Registry stack alarms on the metric), keep a short-lived
    record for `tessera models ignored`, and succeed, so that nothing retries it."""
    logger.warning("event ignored", extra={"outcome": "IGNORED", "reason": reason, "key": key})
    metrics.add_metric(name=shared.IGNORED_METRIC, unit=MetricUnit.Count, value=1)
    event_id = event.get("id") if isinstance(event, dict) and isinstance(event.get("id"), str) else None
    _store().record_ignored(
        event_id=event_id or context.aws_request_id,
        reason=reason,
        key=key,
        source="s3-event" if key is not None else "other",
    )
    return {"outcome": "IGNORED", "reason": reason}


def _pascal(outcome: str) -> str:
    return "".join(part.capitalize() for part in outcome.split("_"))


def _announce(service: str, version: str) -> None:
    """Tell EventBridge; a rollout starts from it where the service's policy turns auto_start on."""
    response = boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": os.environ[shared.ENV_EVENT_BUS],
                "Source": shared.REGISTRATION_EVENT_SOURCE,
                "DetailType": shared.REGISTRATION_EVENT_DETAIL_TYPE,
                "Detail": json.dumps(
                    {"service": service, "version": version, "environment": os.environ[shared.ENV_ENVIRONMENT]}
                ),
            }
        ]
    )
    if response.get("FailedEntryCount", 0):
        failed: dict[str, Any] = next((entry for entry in response.get("Entries", []) if entry.get("ErrorCode")), {})
        raise AnnouncementError(
            f"EventBridge did not accept the announcement of {service} {version}: "
            f"{failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
        )
