"""Access logs of a load balancer in a stack that may not know its region at synth.

CDK's `log_access_logs()` needs the region to pick who delivers the logs, and is used when it is
known. Otherwise: regions older than
August 2022 deliver as a regional Elastic Load Balancing account, newer ones as the
`logdelivery.elasticloadbalancing.amazonaws.com` service. Here the account comes from CDK's region
facts as a template mapping, and the bucket policy admits both: the regional account where one
exists (the stack's own account where none does, which changes nothing) and the service.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnCondition, Fn, Stack, Token
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.region_info import FactName

NO_ACCOUNT = "none"
LOG_DELIVERY_SERVICE = "logdelivery.elasticloadbalancing.amazonaws.com"


def enable_access_logs(load_balancer: elbv2.ApplicationLoadBalancer, bucket: s3.IBucket, prefix: str) -> None:
    stack = Stack.of(load_balancer)
    if not Token.is_unresolved(stack.region):
        load_balancer.log_access_logs(bucket, prefix)  # CDK knows the delivering principal of a known region
        return
    elb_account = stack.regional_fact(FactName.ELBV2_ACCOUNT, NO_ACCOUNT)
    has_elb_account = CfnCondition(
        load_balancer,
        "RegionHasElbAccount",
        expression=Fn.condition_not(Fn.condition_equals(elb_account, NO_ACCOUNT)),
    )
    delivering_account = Fn.condition_if(has_elb_account.logical_id, elb_account, Aws.ACCOUNT_ID).to_string()
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="LoadBalancerLogDelivery",
            actions=["s3:PutObject"],
            principals=[
                iam.ArnPrincipal(Fn.join("", ["arn:", Aws.PARTITION, ":iam::", delivering_account, ":root"])),
                iam.ServicePrincipal(LOG_DELIVERY_SERVICE),
            ],
            resources=[bucket.arn_for_objects(f"{prefix}/AWSLogs/{Aws.ACCOUNT_ID}/*")],
        )
    )
    load_balancer.set_attribute("access_logs.s3.enabled", "true")
    load_balancer.set_attribute("access_logs.s3.bucket", bucket.bucket_name)
    load_balancer.set_attribute("access_logs.s3.prefix", prefix)
    # The load balancer checks that it may write to the bucket when logging is switched on.
    if bucket.policy is not None:
        load_balancer.node.add_dependency(bucket.policy)
