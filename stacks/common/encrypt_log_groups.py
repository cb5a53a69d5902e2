"""Every CloudWatch Logs log group of the app, CDK's own (kubectl provider) included, encrypted with the
environment's logs key. An Aspect, because several constructs create log groups that take no key option."""

from __future__ import annotations

import jsii
from aws_cdk import IAspect
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import IConstruct


@jsii.implements(IAspect)
class EncryptLogGroups:
    def __init__(self, key: kms.IKey) -> None:
        self._key = key

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
            node.kms_key_id = self._key.key_arn
