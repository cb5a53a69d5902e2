"""CloudFormation's intrinsic functions, evaluated the way CloudFormation does at deploy time, for the
simulated deploy (tests/deploy/cloudformation_double.py). Written by hand: no library evaluates a template's
intrinsics offline (cfn-lint checks them, moto's CloudFormation evaluates them only inside its own backend)."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the key or list item disappears
_SUB_REFERENCE = re.compile(r"\$\{(?!!)([^}]+)\}")


class TemplateError(Exception):
    """The template asks for something CloudFormation would refuse (an unknown reference or function)."""


@dataclass(frozen=True)
class DeployEnvironment:
    """The account and region a simulated deploy runs in."""

    account: str = "123456789012"
    region: str = "us-east-1"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    def availability_zones(self) -> list[str]:
        return [f"{self.region}{letter}" for letter in "abcdef"]


@dataclass
class Intrinsics:
    """Evaluates one stack's template values. `ref` and `attribute` answer for the stack's resources (already
    created: the dependency order guarantees it); `stack_output` for another stack's outputs."""

    template: dict
    stack_name: str
    environment: DeployEnvironment
    ref: Callable[[str], str]
    attribute: Callable[[str, str], Any]
    stack_output: Callable[[str, str], str]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(item) for item in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key.startswith("Fn::") or key == "Condition":
                return self._function(key, argument)
        return {key: item for key, item in ((k, self.resolve(v)) for k, v in value.items()) if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"{self.stack_name}: unknown condition {name!r}")
        return bool(self.resolve(conditions[name]))

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": self.environment.account,
            "AWS::Region": self.environment.region,
            "AWS::Partition": self.environment.partition,
            "AWS::URLSuffix": self.environment.url_suffix,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.environment.region}:{self.environment.account}:stack/"
            f"{self.stack_name}/00000000-0000-4000-8000-000000000000",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        parameters = self.template.get("Parameters") or {}
        if name in parameters:
            return parameters[name].get("Default", "")
        return self.ref(name)

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Fn::GetAtt":
            logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(logical, self.resolve(attribute))
        if name == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in self.resolve(items))
        if name == "Fn::Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Fn::Split":
            separator, text = self.resolve(argument)
            return text.split(separator)
        if name == "Fn::GetAZs":
            return self.environment.availability_zones()
        if name == "Fn::Sub":
            return self._sub(argument)
        if name == "Fn::Base64":
            return base64.b64encode(str(self.resolve(argument)).encode()).decode()
        if name == "Fn::FindInMap":
            mapping, top, second = self.resolve(argument)
            return self.template["Mappings"][mapping][top][second]
        if name == "Fn::GetStackOutput":
            resolved = self.resolve(argument)
            return self.stack_output(resolved["StackName"], resolved["OutputName"])
        if name == "Fn::ImportValue":
            raise TemplateError(f"{self.stack_name}: Fn::ImportValue is not modelled; Tessera's stacks use outputs")
        if name == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Fn::Equals":
            left, right = self.resolve(argument)
            return left == right
        if name == "Fn::Not":
            [inner] = argument
            return not self.resolve(inner)
        if name == "Fn::And":
            return all(self.resolve(item) for item in argument)
        if name == "Fn::Or":
            return any(self.resolve(item) for item in argument)
        if name == "Condition":
            return self.condition(argument)
        raise TemplateError(f"{self.stack_name}: intrinsic {name} is not modelled by the simulated deploy")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {key: self.resolve(value) for key, value in variables.items()}

        def replace(match: re.Match) -> str:
            name = match[1]
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return str(self.attribute(logical, attribute))
            return str(self._ref(name))

        return _SUB_REFERENCE.sub(replace, text)


def references(value: Any) -> set[str]:
    """The logical ids a template value refers to (Ref, Fn::GetAtt, Fn::Sub), which CloudFormation creates first.
    Pseudo parameters and parameters are included; the caller keeps the resources."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref" and isinstance(argument, str):
                return {argument}
            if key == "Fn::GetAtt":
                logical = argument[0] if isinstance(argument, list) else argument.split(".", 1)[0]
                return {logical} | references(argument[1] if isinstance(argument, list) else None)
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                for name in _SUB_REFERENCE.findall(text):
                    if name not in variables:
                        found.add(name.split(".", 1)[0])
                return found | references(variables)
        for item in value.values():
            found |= references(item)
    return found
