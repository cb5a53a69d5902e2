"""Publishes a stack's names and ARNs as SSM parameters under `/tessera/<env>/...` (for later stacks and the
operator CLI) and, for the environment's own values, as CloudFormation outputs too (for people and `cdk deploy`
output). A value per service or repository is a parameter only: CloudFormation allows 200 outputs per template,
and one output per value per service would spend them as services are added."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import CfnOutput
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.common.construct_ids import pascal_case


@dataclass(frozen=True)
class PublishedValue:
    value: str
    description: str
    per_service: bool = False  # a parameter only, no output


def publish_values(scope: Construct, *, parameter_prefix: str, values: Mapping[str, PublishedValue]) -> None:
    """`values` maps a parameter path relative to the prefix (e.g. `artifacts/model-bucket-name`) to its value."""
    for relative_name, published in values.items():
        construct_id = pascal_case(relative_name)
        if not published.per_service:
            CfnOutput(scope, construct_id, value=published.value, description=published.description)
        ssm.StringParameter(
            scope,
            f"{construct_id}Parameter",
            parameter_name=f"{parameter_prefix}/{relative_name}",
            string_value=published.value,
            description=published.description,
        )
