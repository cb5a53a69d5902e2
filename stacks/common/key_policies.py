"""Key policies that name who may use a key, instead of handing every use to IAM.

A default CDK key policy allows `kms:*` to the account, so any principal whose IAM policy allows `kms:Decrypt` on
`*` can decrypt with the key. These policies split that in three:
- administration (never encrypt or decrypt) stays with the account, so CloudFormation can update and delete the key;
- grants only for AWS services that create them for a resource (ECR, DynamoDB, EKS, S3 with bucket keys), through
  `kms:GrantIsForAWSResource`;
- cryptographic use only by the named roles (ARN patterns, matched on `aws:PrincipalArn`), of this account, and only
  through the named services (`kms:ViaService`), so a named role cannot decrypt with the key outside them either.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

from stacks.common.resource_names import publisher_role_name, register_role_name, rollout_role_name
from stacks.config.environment import STACK_COMPONENTS, stack_name

# Every action KMS has on a key except the cryptographic ones and CreateGrant (a grant is a way to use the key).
KEY_ADMINISTRATION = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:Put*",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
]
KEY_USE = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]


def environment_roles(stack: Stack, environment: str) -> list[str]:
    """ARN patterns of one environment's roles: those CloudFormation names after each of its stacks
    (`Tessera-<env>-<Component>-...`) and the ones Tessera names itself. Each stack is named in full, so that an
    environment whose name starts with this one's (`dev` and `dev-eu`) matches none of them."""
    named = (publisher_role_name(environment), register_role_name(environment), rollout_role_name(environment))
    return [
        *(f"arn:{stack.partition}:iam::{stack.account}:role/{stack_name(environment, c)}-*" for c in STACK_COMPONENTS),
        *(f"arn:{stack.partition}:iam::{stack.account}:role/{name}" for name in named),
    ]


def named_users_policy(stack: Stack, *, users: Sequence[str], via_services: Sequence[str]) -> iam.PolicyDocument:
    """The key policy; `via_services` are service prefixes (`s3`, `dynamodb`, `ecr`) in the stack's region. No
    users: only the grants AWS services make use the key."""
    account = iam.AccountRootPrincipal()
    statements = [
        iam.PolicyStatement(sid="KeyAdministration", principals=[account], actions=KEY_ADMINISTRATION, resources=["*"]),
        iam.PolicyStatement(
            sid="GrantsForAwsResources",
            principals=[account],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    ]
    if users:
        statements.append(
            iam.PolicyStatement(
                sid="UseByNamedRolesThroughItsServices",
                principals=[account],
                actions=KEY_USE,
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": stack.account,
                        "kms:ViaService": [f"{service}.{stack.region}.{stack.url_suffix}" for service in via_services],
                    },
                    "ArnLike": {"aws:PrincipalArn": list(users)},
                },
            )
        )
    return iam.PolicyDocument(statements=statements)
