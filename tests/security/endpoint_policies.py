"""Evaluates resource policies (VPC endpoint, bucket, repository and key policies) as they stand in a synthesized
template: CloudFormation references to the pseudo parameters are resolved for one account and region, then a
request (who signed it, the action, the resource) is allowed only if an Allow statement matches it and no Deny does
(IAM's evaluation logic for a single policy).

Only what Tessera's policies use is understood; anything else raises rather than guessing."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

UNRESOLVED = "<unresolved>"


@dataclass(frozen=True)
class PseudoParameters:
    account: str
    region: str

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    def as_refs(self) -> dict[str, str]:
        return {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
        }


def resolve(value: object, pseudo: PseudoParameters) -> object:
    """Template values with the pseudo parameters and Fn::Join resolved. A Ref to a resource stays as it is (a
    logical id to follow); in a joined string, it and any other function become UNRESOLVED."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, argument), refs = next(iter(value.items())), pseudo.as_refs()
            if key == "Ref":
                return refs.get(argument, value)
            if key == "Fn::Join":
                separator, parts = argument
                resolved = (resolve(part, pseudo) for part in parts)
                return separator.join(part if isinstance(part, str) else UNRESOLVED for part in resolved)
            if key.startswith("Fn::"):
                return UNRESOLVED
        return {key: resolve(item, pseudo) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, pseudo) for item in value]
    return value


@dataclass(frozen=True)
class Request:
    """`principal_account` None: an anonymous request. `principal_arn`: the IAM role (or user) that signed it, as
    `aws:PrincipalArn` gives it (a role's ARN, not its session's). `keys`: the request's other condition keys,
    e.g. `s3:if-none-match`; a key left out is absent from the request."""

    action: str
    resource: str
    principal_account: str | None
    principal_arn: str | None = None
    keys: tuple[tuple[str, str], ...] = ()
    service: str | None = None  # a service principal (cloudwatch.amazonaws.com) signing for itself

    @property
    def context(self) -> dict[str, str]:
        context = dict(self.keys)
        if self.principal_account is not None:
            context["aws:PrincipalAccount"] = self.principal_account
        if self.principal_arn is not None:
            context["aws:PrincipalArn"] = self.principal_arn
        return context


def denies(policy: dict, request: Request) -> bool:
    """Whether a Deny statement of a resource policy matches: the request fails whatever identity policies allow."""
    return any(s["Effect"] == "Deny" and _matches(s, request) for s in policy["Statement"])


def allows(policy: dict, request: Request) -> bool:
    """`policy` already resolved."""
    matching = [statement for statement in policy["Statement"] if _matches(statement, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def _matches(statement: dict, request: Request) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}
    if unknown:
        raise NotImplementedError(f"statement keys {sorted(unknown)} are not evaluated here")
    return (
        _principal_matches(statement["Principal"], request)
        and any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in _as_list(statement["Action"]))
        and any(fnmatch.fnmatchcase(request.resource, r) for r in _as_list(statement["Resource"]))
        and _conditions_hold(statement.get("Condition", {}), request.context)
    )


def _principal_matches(principal: object, request: Request) -> bool:
    if principal in ("*", {"AWS": "*"}):
        return True  # everyone, anonymous callers included
    if isinstance(principal, dict) and set(principal) == {"Service"}:
        return request.service is not None and request.service in _as_list(principal["Service"])
    if isinstance(principal, dict) and set(principal) == {"AWS"}:
        accounts = {arn.split(":")[4] if arn.startswith("arn:") else arn for arn in _as_list(principal["AWS"])}
        return request.principal_account in accounts
    raise NotImplementedError(f"principal {principal!r} is not evaluated here")


def _conditions_hold(conditions: dict, context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            actual = context.get(key)
            if operator == "Null":
                held = (actual is None) == (str(expected).lower() == "true")
            elif operator == "Bool":
                held = actual is not None and actual.lower() == str(expected).lower()
            elif operator in ("ArnNotEquals", "ArnNotLike"):
                # A negated operator holds when the key is absent (IAM's rule for missing keys).
                held = actual is None or not any(fnmatch.fnmatchcase(actual, p) for p in _as_list(expected))
            elif operator == "StringEquals":
                held = actual is not None and actual in _as_list(expected)
            elif operator in ("StringLike", "ArnLike"):
                held = actual is not None and any(fnmatch.fnmatchcase(actual, p) for p in _as_list(expected))
            else:
                raise NotImplementedError(f"condition operator {operator} is not evaluated here")
            if not held:
                return False
    return True


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]
