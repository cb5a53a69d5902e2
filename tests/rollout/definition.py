"""The rollout state machine's definition, taken from the synthesized Rollout template."""

from __future__ import annotations

import json

from tests.synth import SynthesizedEnvironment

PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def state_machine_definition(env: SynthesizedEnvironment, *, function_arn: str) -> dict:
    """The ASL document, resolved as CloudFormation would: the function's ARN and the pseudo parameters."""
    [machine] = env.template("Rollout").find_resources("AWS::StepFunctions::StateMachine").values()
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(_resolve(part, function_arn) for part in parts))


def _resolve(part: object, function_arn: str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict) and "Ref" in part:
        return PSEUDO_PARAMETERS[part["Ref"]]
    if isinstance(part, dict) and part.get("Fn::GetAtt", [None, None])[1] == "Arn":
        return function_arn
    raise ValueError(f"unexpected reference in the definition: {part}")
