"""How cdk-nag names ARNs in its findings: pseudo parameters as `<AWS::Region>`, literals where known.

Acknowledging a wildcard finding takes the exact resource string cdk-nag prints.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack, Token


@dataclass(frozen=True)
class NagEnvironment:
    partition: str
    region: str
    account: str


def nag_environment(stack: Stack) -> NagEnvironment:
    def shown(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    return NagEnvironment(
        partition=shown(stack.partition, "Partition"),
        region=shown(stack.region, "Region"),
        account=shown(stack.account, "AccountId"),
    )
