"""CloudFormationDouble: a TEST DOUBLE of CloudFormation's deploy engine, to walk Tessera's synthesized templates
the way `cdk deploy` makes CloudFormation walk them, with no AWS account.

It is not CloudFormation. It follows the semantics the bugs it looks for depend on:

- stacks go in dependency order (the cloud assembly's `dependencies`), a random one among those ready;
- within a stack a resource starts once every resource it names in `DependsOn`, `Ref`, `Fn::GetAtt` or
  `Fn::Sub` exists, a random one among those ready (CloudFormation runs them in parallel, so any order
  among them can happen); resources whose `Condition` is false are not created;
- a custom resource (`Custom::*`) gets its properties as CloudFormation sends them: every scalar, at any
  depth, as a string (`0` -> `"0"`, `true` -> `"true"`); an Update carries the old properties, and a new
  physical id from the handler replaces the resource (the old one is deleted at clean-up);
- an update creates and updates in dependency order, then deletes what the new template dropped, dependents
  first; a stack deletion deletes every resource, dependents first, except `DeletionPolicy: Retain`;
- a handler that raises fails the operation: `DeployFailed` names the stack, resource and reason.

Custom resource types and AWS types are handled by the callables given for their type; other types are
recorded as created with AWS-shaped ids (tests/deploy/physical_ids.py).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.intrinsics import DeployEnvironment, Intrinsics, TemplateError, references
from tests.deploy.physical_ids import attribute, physical_id


@dataclass(frozen=True)
class ResourceRequest:
    """One call CloudFormation makes for a resource: what a custom resource's function receives."""

    request_type: str  # Create | Update | Delete
    stack: str
    logical_id: str
    resource_type: str
    properties: dict
    old_properties: dict | None = None
    physical_id: str | None = None

    def event(self) -> dict:
        """The event a custom resource's function gets (through CDK's provider framework or directly)."""
        event: dict[str, Any] = {
            "RequestType": self.request_type,
            "ServiceToken": self.properties.get("ServiceToken", ""),
            "ResponseURL": "https://cloudformation-custom-resource-response.invalid/",
            "StackId": f"arn:aws:cloudformation:us-east-1:123456789012:stack/{self.stack}/0",
            "RequestId": f"{self.stack}-{self.logical_id}-{self.request_type}",
            "LogicalResourceId": self.logical_id,
            "ResourceType": self.resource_type,
            "ResourceProperties": copy.deepcopy(self.properties),
        }
        if self.physical_id is not None:
            event["PhysicalResourceId"] = self.physical_id
        if self.old_properties is not None:
            event["OldResourceProperties"] = copy.deepcopy(self.old_properties)
        return event


@dataclass(frozen=True)
class ResourceResult:
    physical_id: str | None = None  # None: keep the one it had (or get one made up on Create)
    data: dict[str, Any] = field(default_factory=dict)  # a custom resource's Fn::GetAtt values


Handler = Callable[[ResourceRequest], ResourceResult | None]


class DeployFailed(Exception):  # noqa: N818 - what CloudFormation reports, not a bug of the double
    """A resource failed: CloudFormation would roll the stack back."""


def cloudformation_strings(value: Any) -> Any:
    """Properties as CloudFormation passes them to a custom resource: scalars become strings, shapes stay."""
    if isinstance(value, dict):
        return {key: cloudformation_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cloudformation_strings(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


@dataclass
class _Resource:
    resource_type: str
    physical_id: str
    properties: dict  # as last resolved (custom resources: as last sent)
    data: dict[str, Any]


@dataclass
class _Stack:
    name: str
    template: dict
    resources: dict[str, _Resource] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


class CloudFormationDouble:
    """See the module docstring. `handlers` maps a resource type to what runs when CloudFormation acts on it."""

    def __init__(
        self, *, handlers: dict[str, Handler], seed: int, environment: DeployEnvironment | None = None
    ) -> None:
        self.environment = environment or DeployEnvironment()
        self._handlers = handlers
        self._random = random.Random(seed)  # noqa: S311 - an order to explore, not a secret
        self._stacks: dict[str, _Stack] = {}
        self._dependencies: dict[str, set[str]] = {}
        self.log: list[tuple[str, str, str]] = []  # (stack, logical id, Create | Update | Delete), in order

    # -- stacks -------------------------------------------------------------------------------------

    def deploy(self, templates: dict[str, dict], dependencies: dict[str, set[str]]) -> None:
        """Create or update every stack, in dependency order (a random one among those ready)."""
        self._dependencies = dependencies
        for name in self._ordered(templates, dependencies):
            stack = self._stacks.get(name)
            if stack is None:
                stack = self._stacks[name] = _Stack(name, templates[name])
                self._apply(stack, templates[name], previous=None)
            else:
                previous, stack.template = stack.template, templates[name]
                self._apply(stack, templates[name], previous=previous)

    def destroy(self, dependencies: dict[str, set[str]]) -> None:
        """Delete every stack, dependents first (`cdk destroy`)."""
        dependents = {name: {other for other, needs in dependencies.items() if name in needs} for name in self._stacks}
        for name in self._ordered({name: {} for name in self._stacks}, dependents):
            stack = self._stacks[name]
            self._delete_all(stack, list(stack.resources), stack.template)
            del self._stacks[name]

    def physical_ids(self, stack: str, resource_type: str) -> dict[str, str]:
        return {
            logical: resource.physical_id
            for logical, resource in self._stacks[stack].resources.items()
            if resource.resource_type == resource_type
        }

    def must_precede(self, first: str, then: str) -> bool:
        """Whether CloudFormation always finishes resource `first` before it starts `then` (both "stack/logical"):
        `then`'s stack depends on `first`'s, or within one stack `then` depends on `first` through a chain of
        DependsOn, Ref, Fn::GetAtt and Fn::Sub."""
        first_stack, first_logical = first.split("/", 1)
        then_stack, then_logical = then.split("/", 1)
        if first_stack != then_stack:
            return first_stack in _closure(self._dependencies, then_stack)
        declared = self._stacks[then_stack].template.get("Resources", {})
        needs = {logical: _needs(resource, declared) for logical, resource in declared.items()}
        return first_logical in _closure(needs, then_logical)

    def function_environment(self, stack: str, handler: str) -> dict[str, str]:
        """The environment variables of the stack's Lambda function with this handler, as deployed."""
        [function] = [
            resource.properties
            for resource in self._stacks[stack].resources.values()
            if resource.resource_type == "AWS::Lambda::Function" and resource.properties.get("Handler") == handler
        ]
        return function.get("Environment", {}).get("Variables", {})

    def _ordered(self, templates: dict[str, Any], dependencies: dict[str, set[str]]) -> list[str]:
        needs = {name: {d for d in dependencies.get(name, set()) if d in templates} for name in templates}
        return self._topological(needs)

    # -- one stack ----------------------------------------------------------------------------------

    def _apply(self, stack: _Stack, template: dict, *, previous: dict | None) -> None:
        intrinsics = self._intrinsics(stack)
        wanted = {
            logical: resource
            for logical, resource in template.get("Resources", {}).items()
            if "Condition" not in resource or intrinsics.condition(resource["Condition"])
        }
        replaced: list[tuple[str, _Resource]] = []
        for logical in self._topological({logical: _needs(resource, wanted) for logical, resource in wanted.items()}):
            old = self._create_or_update(stack, logical, wanted[logical], intrinsics)
            if old is not None:
                replaced.append((logical, old))
        for logical, old in replaced:
            self._call(stack, logical, old.resource_type, "Delete", old.properties, physical=old.physical_id)
        dropped = [logical for logical in stack.resources if logical not in wanted]
        self._delete_all(stack, dropped, previous or template)
        stack.outputs = {
            name: str(intrinsics.resolve(output["Value"])) for name, output in template.get("Outputs", {}).items()
        }

    def _create_or_update(
        self, stack: _Stack, logical: str, resource: dict, intrinsics: Intrinsics
    ) -> _Resource | None:
        """Returns the replaced resource, if the update replaced it."""
        resource_type = resource["Type"]
        try:
            properties = intrinsics.resolve(resource.get("Properties", {}))
        except (TemplateError, KeyError, IndexError, ValueError) as error:
            raise DeployFailed(f"{stack.name}/{logical} ({resource_type}): {error!r}") from error
        if _is_custom(resource_type):
            properties = cloudformation_strings(properties)
        existing = stack.resources.get(logical)
        if existing is None:
            result = self._call(stack, logical, resource_type, "Create", properties)
            made_up = physical_id(stack.name, logical, resource, properties, self.environment)
            stack.resources[logical] = _Resource(
                resource_type,
                (result.physical_id if result else None) or made_up,
                properties,
                result.data if result else {},
            )
            return None
        if existing.properties == properties:
            return None
        result = self._call(
            stack, logical, resource_type, "Update", properties, old=existing.properties, physical=existing.physical_id
        )
        new_id = (result.physical_id if result else None) or existing.physical_id
        stack.resources[logical] = _Resource(
            resource_type, new_id, properties, result.data if result else existing.data
        )
        return existing if new_id != existing.physical_id and _is_custom(resource_type) else None

    def _delete_all(self, stack: _Stack, logicals: list[str], template: dict) -> None:
        """Delete resources of a stack, dependents first (a random one among those whose dependents are gone)."""
        declared = template.get("Resources", {})
        doomed = set(logicals)
        dependents = {
            logical: {other for other in doomed if logical in _needs(declared.get(other, {}), declared)}
            for logical in doomed
        }
        for logical in self._topological(dependents):
            resource = stack.resources.pop(logical)
            if declared.get(logical, {}).get("DeletionPolicy") == "Retain":
                continue
            self._call(
                stack, logical, resource.resource_type, "Delete", resource.properties, physical=resource.physical_id
            )

    def _call(
        self,
        stack: _Stack,
        logical: str,
        resource_type: str,
        request_type: str,
        properties: dict,
        *,
        old: dict | None = None,
        physical: str | None = None,
    ) -> ResourceResult | None:
        self.log.append((stack.name, logical, request_type))
        handler = self._handlers.get(resource_type)
        if handler is None:
            if _is_custom(resource_type):
                raise DeployFailed(f"{stack.name}/{logical}: no handler for custom resource type {resource_type}")
            return None
        request = ResourceRequest(request_type, stack.name, logical, resource_type, properties, old, physical)
        try:
            return handler(request)
        except Exception as error:
            raise DeployFailed(f"{stack.name}/{logical} ({resource_type}) {request_type} failed: {error}") from error

    def _intrinsics(self, stack: _Stack) -> Intrinsics:
        def ref(logical: str) -> str:
            if logical not in stack.resources:
                raise TemplateError(f"{stack.name}: Ref to {logical}, which does not exist (yet)")
            return stack.resources[logical].physical_id

        def get_att(logical: str, name: str) -> Any:
            resource = stack.resources.get(logical)
            if resource is None:
                raise TemplateError(f"{stack.name}: Fn::GetAtt of {logical}, which does not exist (yet)")
            if name in resource.data:
                return resource.data[name]
            if _is_custom(resource.resource_type):
                raise TemplateError(f"{stack.name}: custom resource {logical} returned no attribute {name!r}")
            declared = stack.template["Resources"][logical]
            return attribute(
                stack.name, logical, declared, resource.properties, resource.physical_id, name, self.environment
            )

        def stack_output(name: str, output: str) -> str:
            if name not in self._stacks or output not in self._stacks[name].outputs:
                raise TemplateError(f"{stack.name}: output {output} of stack {name} does not exist (yet)")
            return self._stacks[name].outputs[output]

        return Intrinsics(stack.template, stack.name, self.environment, ref, get_att, stack_output)

    def _topological(self, needs: dict[str, Iterable[str]]) -> list[str]:
        """An order in which each item comes after what it needs, chosen at random among the ready ones."""
        waiting = {item: set(required) for item, required in needs.items()}
        order: list[str] = []
        while waiting:
            ready = sorted(item for item, required in waiting.items() if not required)
            if not ready:
                raise DeployFailed(f"circular dependency among {sorted(waiting)}")
            chosen = self._random.choice(ready)
            order.append(chosen)
            del waiting[chosen]
            for required in waiting.values():
                required.discard(chosen)
        return order


def _closure(needs: dict[str, set[str]], start: str) -> set[str]:
    """Everything `start` needs, directly or through others."""
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        for required in needs.get(frontier.pop(), set()):
            if required not in seen:
                seen.add(required)
                frontier.append(required)
    return seen


def _is_custom(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource"


def _needs(resource: dict, resources: dict) -> set[str]:
    depends_on = resource.get("DependsOn", [])
    explicit = {depends_on} if isinstance(depends_on, str) else set(depends_on)
    return (explicit | references(resource.get("Properties", {}))) & set(resources)
