"""What CloudFormation answers for a created resource's `Ref` and `Fn::GetAtt`, in the shapes AWS uses
(schemas downstream check some of them: a security group id must look like `sg-...`). Values are derived
from the stack and logical id, so every run gives the same ones."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tests.deploy.intrinsics import DeployEnvironment

# Types whose Ref is the name given in a property (when the template names it).
_NAME_PROPERTY = {
    "AWS::EKS::Cluster": "Name",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Events::Rule": "Name",
    "AWS::Events::EventBus": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SSM::Parameter": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
}
# Types whose Ref is an id with a prefix.
_ID_PREFIX = {
    "AWS::EC2::VPC": "vpc",
    "AWS::EC2::Subnet": "subnet",
    "AWS::EC2::SecurityGroup": "sg",
    "AWS::EC2::RouteTable": "rtb",
    "AWS::EC2::InternetGateway": "igw",
    "AWS::EC2::NatGateway": "nat",
    "AWS::EC2::EIP": "eipalloc",
    "AWS::EC2::VPCEndpoint": "vpce",
    "AWS::EC2::FlowLog": "fl",
    "AWS::EC2::LaunchTemplate": "lt",
    "AWS::EC2::PlacementGroup": "pg",
    "AWS::KMS::Key": "key",
}
_ARN_SERVICE = {
    "AWS::IAM::Role": ("iam", "role/"),
    "AWS::IAM::ManagedPolicy": ("iam", "policy/"),
    "AWS::Lambda::Function": ("lambda", "function:"),
    "AWS::SQS::Queue": ("sqs", ""),
    "AWS::SNS::Topic": ("sns", ""),
    "AWS::DynamoDB::Table": ("dynamodb", "table/"),
    "AWS::EKS::Cluster": ("eks", "cluster/"),
    "AWS::KMS::Key": ("kms", "key/"),
    "AWS::S3::Bucket": ("s3", ""),
    "AWS::StepFunctions::StateMachine": ("states", "stateMachine:"),
    "AWS::Events::Rule": ("events", "rule/"),
    "AWS::Logs::LogGroup": ("logs", "log-group:"),
    "AWS::ECR::Repository": ("ecr", "repository/"),
}


def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def physical_id(stack: str, logical: str, resource: dict, properties: dict, env: DeployEnvironment) -> str:
    """The Ref of a resource CloudFormation created (custom resources answer their own)."""
    kind = resource["Type"]
    name_property = _NAME_PROPERTY.get(kind)
    if name_property and isinstance(properties.get(name_property), str):
        named = properties[name_property]
    else:
        named = f"{stack}-{logical}-{_digest(stack, logical, length=12).upper()}"[:64]
    if kind in _ID_PREFIX:
        return f"{_ID_PREFIX[kind]}-{_digest(stack, logical)}"
    if kind == "AWS::SQS::Queue":
        return f"https://sqs.{env.region}.{env.url_suffix}/{env.account}/{named}"
    if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine", "AWS::IAM::ManagedPolicy"):
        return _arn(kind, named, env)
    if kind.startswith("AWS::ElasticLoadBalancingV2::"):
        return _elb_arn(kind, logical, stack, env)
    return named


def attribute(
    stack: str, logical: str, resource: dict, properties: dict, ref: str, name: str, env: DeployEnvironment
) -> Any:
    """The Fn::GetAtt of a resource CloudFormation created."""
    kind = resource["Type"]
    if name == "Arn":
        if kind.startswith("AWS::ElasticLoadBalancingV2::"):
            return ref
        if kind == "AWS::SQS::Queue":
            return _arn(kind, ref.rsplit("/", 1)[1], env)
        if kind in ("AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return ref
        return _arn(kind, ref, env)
    if kind == "AWS::EKS::Cluster":
        return {
            "ClusterSecurityGroupId": f"sg-{_digest(stack, logical, 'cluster')}",
            "Endpoint": f"https://{_digest(stack, logical, length=32).upper()}.gr7.{env.region}.eks.amazonaws.com",
            "CertificateAuthorityData": base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode(),
            "OpenIdConnectIssuerUrl": f"https://oidc.eks.{env.region}.amazonaws.com/id/{_digest(stack, logical)}",
        }.get(name, f"{ref}.{name}")
    if kind == "AWS::EC2::SecurityGroup" and name == "GroupId":
        return ref
    if kind == "AWS::EC2::VPC" and name == "CidrBlock":
        return properties["CidrBlock"]
    if kind == "AWS::EC2::Subnet" and name == "SubnetId":
        return ref
    if kind == "AWS::SQS::Queue" and name == "QueueName":
        return ref.rsplit("/", 1)[1]
    if kind == "AWS::ElasticLoadBalancingV2::TargetGroup" and name == "TargetGroupFullName":
        return ref.split(":", 5)[5]
    if kind == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        full_name = ref.split(":", 5)[5].removeprefix("loadbalancer/")
        return {
            "LoadBalancerFullName": full_name,
            "DNSName": f"internal-{logical.lower()}.{env.region}.elb.amazonaws.com",
        }.get(name, f"{ref}.{name}")
    return f"{ref}.{name}"


def _arn(kind: str, name: str, env: DeployEnvironment) -> str:
    service, prefix = _ARN_SERVICE.get(kind, (kind.split("::")[1].lower(), ""))
    if service in ("iam", "s3"):
        return f"arn:{env.partition}:{service}::{'' if service == 's3' else env.account}:{prefix}{name}"
    return f"arn:{env.partition}:{service}:{env.region}:{env.account}:{prefix}{name}"


def _elb_arn(kind: str, logical: str, stack: str, env: DeployEnvironment) -> str:
    short = kind.rsplit("::", 1)[1]
    suffix = _digest(stack, logical, length=16)
    name = logical[:24]
    path = {
        "TargetGroup": f"targetgroup/{name}/{suffix}",
        "LoadBalancer": f"loadbalancer/app/{name}/{suffix}",
        "Listener": f"listener/app/lb/{suffix}/{_digest(logical, length=16)}",
        "ListenerRule": f"listener-rule/app/lb/{suffix}/{_digest(logical, length=16)}/{_digest(logical, length=15)}",
    }.get(short, f"{short.lower()}/{suffix}")
    return f"arn:{env.partition}:elasticloadbalancing:{env.region}:{env.account}:{path}"
