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
from tessera_shared import constants as shared

logger = Logger(service=shared.REGISTER_FUNCTION_SERVICE)
metrics = Metrics(namespace=shared.METRICS_NAMESPACE, service=shared.REGISTER_FUNCTION_SERVICE)


@cache
def _registrar() -> Any:
    """Built once per execution environment; the catalog is read from SSM at the first request.
    The registrar (and pydantic, which the manifest model needs) is imported here: an ignored
    event never pays for it."""
    from registry.catalog import Catalog
    from registry.registrar import Registrar
    from registry.store import RegistryStore

    catalog_text = boto3.client("ssm").get_parameter(Name=os.environ[shared.ENV_CATALOG_PARAMETER])["Parameter"][
        "Value"
    ]
    return Registrar(
        s3=boto3.client("s3"),
        ecr=boto3.client("ecr"),
        store=RegistryStore(boto3.client("dynamodb"), os.environ[shared.ENV_REGISTRY_TABLE]),
        catalog=Catalog.from_json(catalog_text),
        bucket=os.environ[shared.ENV_MODEL_BUCKET],
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handle(event: Any, context: Any) -> dict:
    request = parse_request(event, bucket=os.environ[shared.ENV_MODEL_BUCKET])
    if isinstance(request, Ignored):
        # Not a manifest for us: say why and succeed, so that nothing retries it.
        logger.warning("event ignored", extra={"outcome": "IGNORED", "reason": request.reason})
        metrics.add_metric(name="RegistrationIgnored", unit=MetricUnit.Count, value=1)
        return {"outcome": "IGNORED", "reason": request.reason}
    logger.append_keys(service_name=request.service, version=request.version, source=request.source)
    outcome = _registrar().register(request.service, request.version)
    logger.info(
        "registration decided",
        extra={
            "outcome": outcome.outcome,
            "state": outcome.state,
            "reasons": outcome.reasons,
            "changed": outcome.changed,
        },
    )
    metrics.add_metric(name=f"Registration{outcome.outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    if outcome.changed and outcome.state == shared.REGISTERED:
        _announce(outcome.service, outcome.version)
    return outcome.as_dict()


def _announce(service: str, version: str) -> None:
    """Tell EventBridge; a rollout starts from it where the service's policy turns auto_start on."""
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": shared.REGISTRATION_EVENT_SOURCE,
                "DetailType": shared.REGISTRATION_EVENT_DETAIL_TYPE,
                "Detail": json.dumps(
                    {"service": service, "version": version, "environment": os.environ[shared.ENV_ENVIRONMENT]}
                ),
            }
        ]
    )
