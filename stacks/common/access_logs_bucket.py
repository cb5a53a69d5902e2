"""A bucket that receives access logs (S3 server access logs, load balancer logs)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_s3 as s3
from constructs import Construct


def access_logs_bucket(scope: Construct, *, retention_days: int, retain: bool, logs_of: str) -> s3.Bucket:
    bucket = s3.Bucket(
        scope,
        "AccessLogsBucket",
        # S3 server access logs and load balancer logs can only be delivered to SSE-S3 buckets.
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(retention_days))],
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        auto_delete_objects=not retain,
    )
    Validations.of(bucket).acknowledge(
        Acknowledgment(
            id="AwsSolutions-S1",
            reason=f"This bucket receives {logs_of} access logs; logging it to itself would loop.",
        )
    )
    return bucket
