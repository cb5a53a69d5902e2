"""Every CloudWatch Logs log group of the app, CDK's own (kubectl provider) included, encrypted with the
environment's logs key: several constructs create log groups that take no key option.

A walk of the finished construct tree rather than an Aspect: an Aspect written in Python is called back from
CDK's Node.js process once per construct during synth (824 round trips for dev, about 0.56 s), the walk reads the
tree once. The app builder runs it after every stack is built, and a test checks every log group of every
synthesized template."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import IConstruct


def encrypt_log_groups(root: IConstruct, key: kms.IKey) -> int:
    """Sets `key` on every log group below `root` that has none; returns how many it set."""
    encrypted = 0
    for node in root.node.find_all():
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
            node.kms_key_id = key.key_arn
            encrypted += 1
    return encrypted
