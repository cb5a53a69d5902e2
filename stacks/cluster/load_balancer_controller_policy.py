"""The AWS Load Balancer Controller's IAM policy, written for what Tessera uses it for. Pure: no CDK.

Tessera's load balancer, listeners, rules and target groups are CDK resources; the controller only
registers pod IPs into them through TargetGroupBindings (without `spec.networking`, so it manages no
security-group rules). Its Ingress reconciler cannot be switched off, so this policy is the guard: it
grants none of the create/modify/delete calls of the upstream policy (data/, kept pinned by checksum
as the reference every action here must come from).

The calls are those of the v3.5.0 TargetGroupBinding path (pkg/targetgroupbinding, pkg/networking):
DescribeTargetGroups and DescribeTargetHealth (binding, readiness gates), Register/DeregisterTargets,
and DescribeVpcs / DescribeAvailabilityZones to place a target outside the VPC's CIDRs.
"""

from __future__ import annotations

from tessera_shared.constants import TARGET_GROUP_OWNER_TAG

READ_ACTIONS = (
    "ec2:DescribeVpcs",
    "ec2:DescribeAvailabilityZones",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
)
TARGET_ACTIONS = ("elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets")


def controller_policy(*, partition: str, region: str, account: str, cluster_name: str) -> dict:
    """Policy document; the arguments may be CDK tokens (stack) or readable names (tests, cdk-nag)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                # Describe calls support no resource-level permissions.
                "Sid": "DescribeTargetsAndNetwork",
                "Effect": "Allow",
                "Action": list(READ_ACTIONS),
                "Resource": "*",
            },
            {
                # The Services stack creates the target groups after the controller exists and tags each with
                # the cluster's name; no other target group (and no listener, rule or load balancer) can be touched.
                "Sid": "RegisterPodsInTesseraTargetGroups",
                "Effect": "Allow",
                "Action": list(TARGET_ACTIONS),
                "Resource": f"arn:{partition}:elasticloadbalancing:{region}:{account}:targetgroup/*/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{TARGET_GROUP_OWNER_TAG}": cluster_name}},
            },
        ],
    }
