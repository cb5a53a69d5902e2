"""Where the failures of an asynchronously invoked Tessera function end up: a queue for events EventBridge could
not deliver (the rule target's dead-letter queue) and a queue for invocations that failed after Lambda's own
retries (the function's on-failure destination). A target's dead-letter queue catches only the first kind."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# Lambda's retries of a failed asynchronous invocation (at most 2), before the on-failure destination.
ASYNC_RETRIES = 2


def failure_queue(scope: Construct, construct_id: str, *, holds: str, removal_policy: RemovalPolicy) -> sqs.Queue:
    """An encrypted, TLS-only queue kept 14 days, that is itself the end of the line (no dead-letter queue)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.days(14),
        removal_policy=removal_policy,
    )
    Validations.of(queue).acknowledge(
        Acknowledgment(id="AwsSolutions-SQS3", reason=f"This queue is itself where {holds} end up.")
    )
    return queue


def send_failed_invocations(
    scope: Construct, function: lambda_.IFunction, *, removal_policy: RemovalPolicy
) -> sqs.Queue:
    """The function's on-failure destination for asynchronous invocations, after ASYNC_RETRIES retries."""
    queue = failure_queue(
        scope, "FailedInvocations", holds="asynchronous invocations that failed", removal_policy=removal_policy
    )
    function.configure_async_invoke(
        retry_attempts=ASYNC_RETRIES, max_event_age=Duration.hours(6), on_failure=destinations.SqsDestination(queue)
    )
    return queue
