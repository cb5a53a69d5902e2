"""The rollout's safety net (lambda/rollout/safety_net.py): every execution's end reaches the rollout function
through an EventBridge rule on its status change, and a stopped execution's second pass comes back through the
settle queue once none of its invocations can still land.

- the rule: SUCCEEDED (announce a promotion nobody announced), FAILED, TIMED_OUT and ABORTED; events it cannot
  deliver go to a dead-letter queue;
- the function's failed asynchronous invocations (say, an announcement SNS refused three times) go to its
  on-failure destination;
- the settle queue: each message is delayed until the execution is quiescent, and retried (the second pass
  raises until then, or while its announcement fails) until it lands in the queue's own dead-letter queue.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.common.failure_queues import failure_queue, send_failed_invocations
from tessera_shared import constants as shared

STATUS_CHANGE = "Step Functions Execution Status Change"
ENDINGS = ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
# AWS's advice for an SQS event source: a visibility timeout of six times the function's timeout.
SETTLE_VISIBILITY = Duration.seconds(6 * shared.ROLLOUT_FUNCTION_TIMEOUT_SECONDS)
SETTLE_ATTEMPTS = 10


class SafetyNet(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        state_machine: sfn.IStateMachine,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        undelivered = failure_queue(
            self,
            "UndeliveredStatusChanges",
            holds="status changes EventBridge could not deliver",
            removal_policy=removal_policy,
        )
        send_failed_invocations(self, function, removal_policy=removal_policy)
        events.Rule(
            self,
            "ExecutionEnded",
            description="A rollout execution ended: announce it, and settle one that ended without finishing",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[STATUS_CHANGE],
                detail={"status": ENDINGS, "stateMachineArn": [state_machine.state_machine_arn]},
            ),
            targets=[
                targets.LambdaFunction(
                    function,
                    retry_attempts=8,
                    max_event_age=Duration.seconds(shared.SAFETY_NET_MAX_EVENT_AGE_SECONDS),
                    dead_letter_queue=undelivered,
                )
            ],
        )
        unsettled = failure_queue(
            self, "Unsettled", holds="second passes that failed every attempt", removal_policy=removal_policy
        )
        self.settle_queue = sqs.Queue(
            self,
            "Settle",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=SETTLE_VISIBILITY,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=unsettled, max_receive_count=SETTLE_ATTEMPTS),
            removal_policy=removal_policy,
        )
        self.settle_queue.grant_send_messages(function)
        function.add_event_source(sources.SqsEventSource(self.settle_queue, batch_size=1))
        function.add_environment(shared.ENV_SETTLE_QUEUE_URL, self.settle_queue.queue_url)
