"""Who may write model versions and serving images, and how: the publisher role, the model bucket's policy and
the service repositories' policies.

A registered version must stay exactly what was registered: pods load it by the S3 version ids the registry
recorded, and check every byte against its SHA-256. The bucket policy makes S3 itself refuse what would change
one (a bucket policy, not Object Lock: Object Lock cannot tell a first write from an overwrite, and in
compliance mode nobody could ever remove a version):

- under `models/` only the publisher role writes, and only with `If-None-Match: *`, so an existing key is never
  overwritten; CreateMultipartUpload and UploadPart take no conditional header and are exempted by
  `s3:ObjectCreationOperation` (false for them), as the S3 User Guide's "Enforce conditional writes" documents,
  while CompleteMultipartUpload must carry it;
- under `registered/` (the registry's record of each registered version's object versions) only the register
  function writes, on the same terms;
- nobody deletes an object or an object version under either prefix (a delete followed by a new write would
  change a version as surely as an overwrite). In an environment whose bucket is emptied on `cdk destroy`, CDK's
  auto-delete function is exempt.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from tessera_shared.constants import MODEL_ROOT, REGISTERED_ROOT

AUTO_DELETE_PROVIDER_ID = "Custom::S3AutoDeleteObjectsCustomResourceProvider"
AUTO_DELETE_IMAGES_PROVIDER_ID = "Custom::ECRAutoDeleteImagesCustomResourceProvider"


def role_arn(stack: Stack, role_name: str) -> str:
    """A role's ARN from its name, for a role another stack creates (no cross-stack reference needed)."""
    return stack.format_arn(service="iam", region="", resource="role", resource_name=role_name)


def protect_model_versions(bucket: s3.Bucket, *, publisher_arn: str, register_arn: str) -> None:
    stack = Stack.of(bucket)
    models = bucket.arn_for_objects(f"{MODEL_ROOT}*")
    registered = bucket.arn_for_objects(f"{REGISTERED_ROOT}*")
    writers = ((models, publisher_arn, "Models"), (registered, register_arn, "Registered"))
    for objects, writer, label in writers:
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"Only{label}WriterWrites",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[objects],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": writer}},
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"No{label}Overwrites",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[objects],
                conditions={"Null": {"s3:if-none-match": "true"}, "Bool": {"s3:ObjectCreationOperation": "true"}},
            )
        )
    auto_delete = stack.node.try_find_child(AUTO_DELETE_PROVIDER_ID)
    exempt = {"ArnNotEquals": {"aws:PrincipalArn": auto_delete.role_arn}} if auto_delete is not None else None
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="NoDeletesOfModelVersions",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
            resources=[models, registered],
            conditions=exempt,
        )
    )


def admit_promotion_peers(bucket: s3.Bucket, key: kms.Key, accounts: list[str]) -> None:
    """Read only, for `tessera models promote --from <this environment>` run in a peer account: get any object
    version under models/ and registered/, list those prefixes, and decrypt with the artifacts key through S3 (the
    key policy, since a bucket policy cannot grant a key). The peer account's own IAM must still allow its
    principals the same actions; nothing here lets a peer write, delete or read the registry table."""
    stack = Stack.of(bucket)
    peers: list[iam.IPrincipal] = [iam.AccountPrincipal(account) for account in accounts]
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="PromotionPeersReadVersions",
            principals=peers,
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[bucket.arn_for_objects(f"{MODEL_ROOT}*"), bucket.arn_for_objects(f"{REGISTERED_ROOT}*")],
        )
    )
    bucket.add_to_resource_policy(
        iam.PolicyStatement(
            sid="PromotionPeersListVersions",
            principals=peers,
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{MODEL_ROOT}*", f"{REGISTERED_ROOT}*"]}},
        )
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="PromotionPeersDecryptThroughS3",
            principals=peers,
            actions=["kms:Decrypt"],
            resources=["*"],
            conditions={
                "StringEquals": {
                    "kms:CallerAccount": list(accounts),
                    "kms:ViaService": f"s3.{stack.region}.{stack.url_suffix}",
                }
            },
        )
    )


def publisher_role(stack: Stack, *, role_name: str) -> iam.Role:
    """Assumable by principals of this account that are allowed sts:AssumeRole on it; what it may do is granted
    by the Artifacts stack (model bucket, key, registry, repositories)."""
    return iam.Role(
        stack,
        "ModelPublisher",
        role_name=role_name,
        assumed_by=iam.AccountRootPrincipal(),
        description="Tessera: publishes model versions (uploads under models/) and pushes serving images",
    )


def protect_repository(repository: ecr.Repository, *, publisher_arn: str, rollout_arn: str) -> None:
    """Only the publisher pushes or deletes images; the rollout function may also put an existing image's manifest
    under its protective tag (registry/images.py); nobody else writes. CDK's image auto-delete on `cdk destroy`,
    where the environment has it, is exempt from the delete rule."""
    repository.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyThePublisherPushes",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": publisher_arn}},
        )
    )
    repository.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyThePublisherAndTheRolloutTag",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["ecr:PutImage"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": [publisher_arn, rollout_arn]}},
        )
    )
    auto_delete = Stack.of(repository).node.try_find_child(AUTO_DELETE_IMAGES_PROVIDER_ID)
    deleters = [publisher_arn] + ([auto_delete.role_arn] if auto_delete is not None else [])
    repository.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyThePublisherDeletes",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["ecr:BatchDeleteImage"],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": deleters}},
        )
    )
