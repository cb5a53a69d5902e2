"""What every stack of one environment shares, computed once by the app builder from the config."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy


@dataclass(frozen=True)
class EnvironmentScope:
    name: str
    parameter_prefix: str  # SSM path under which the stacks publish what later stacks and tools read
    retain: bool  # keep stateful resources (keys, repositories, buckets, tables, logs) when a stack is deleted

    @property
    def removal_policy(self) -> RemovalPolicy:
        return RemovalPolicy.RETAIN if self.retain else RemovalPolicy.DESTROY
