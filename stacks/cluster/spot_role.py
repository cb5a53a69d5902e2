"""The EC2 Spot service-linked role (AWSServiceRoleForEC2Spot), created when a Karpenter pool may buy Spot.

EC2 creates it on an account's first Spot request only if the caller may create it; Karpenter's controller policy
(its own template) may not, so in an account that never used Spot every launch fails with
AuthFailure.ServiceLinkedRoleCreationNotPermitted and the pods stay Pending.

Why an SDK call (AwsCustomResource) and not AWS::IAM::ServiceLinkedRole: the role is one per account and takes no
custom suffix for spot.amazonaws.com, so the CloudFormation resource fails in any account that already has it, and
it deletes the role with the stack while other workloads (another environment, another team) may still launch Spot.
The call tolerates an existing role (IAM answers InvalidInput "Service role name AWSServiceRoleForEC2Spot has been
taken in this account") and nothing is called on delete.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.cluster.cdk_internals_nag import BASIC_EXECUTION, LOGS_REASON, acknowledge

SPOT_SERVICE = "spot.amazonaws.com"
SPOT_ROLE_NAME = "AWSServiceRoleForEC2Spot"
RESOURCE_TYPE = "Custom::SpotServiceLinkedRole"
# CDK's handler tests the error's name with RegExp.test: the SDK v3 name is InvalidInputException, the wire code
# InvalidInput. IAM gives no narrower code for "already exists"; the call's only input is fixed, so another
# InvalidInput cause is not expected.
ALREADY_EXISTS_ERROR = "^InvalidInput(Exception)?$"
# The id of the singleton function that CDK shares between a stack's AwsCustomResources (aws-cdk-lib's own).
PROVIDER_ID = "AWS679f53fac002430cb0da5b7982bd2287"


class SpotServiceLinkedRole(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        role_arn = stack.format_arn(
            service="iam",
            region="",
            resource="role",
            resource_name=f"aws-service-role/{SPOT_SERVICE}/{SPOT_ROLE_NAME}",
        )
        self.resource = cr.AwsCustomResource(
            self,
            "Resource",
            resource_type=RESOURCE_TYPE,
            on_create=cr.AwsSdkCall(
                service="IAM",
                action="createServiceLinkedRole",
                parameters={"AWSServiceName": SPOT_SERVICE},
                physical_resource_id=cr.PhysicalResourceId.of(SPOT_ROLE_NAME),
                ignore_error_codes_matching=ALREADY_EXISTS_ERROR,
            ),
            # No on_update (nothing to change) and no on_delete: the role outlives the stack.
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["iam:CreateServiceLinkedRole"],
                        resources=[role_arn],
                        conditions={"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}},
                    )
                ]
            ),
            install_latest_aws_sdk=False,  # the IAM client is in the Lambda runtime; no npm download mid-deploy
        )
        provider = stack.node.find_child(PROVIDER_ID)
        acknowledge(provider.node.find_child("ServiceRole"), BASIC_EXECUTION, LOGS_REASON)
