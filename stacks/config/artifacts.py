"""Config model of the Artifacts stack: how long images and model versions are kept, and who else uses its key."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from stacks.config.base import StrictModel, iam_role_arns, raise_if_any


class ArtifactsConfig(StrictModel):
    """Retention of images and model versions in the Artifacts stack."""

    tagged_images_to_keep: int = Field(30, ge=1, le=1000, description="Newest tagged images kept per ECR repository.")
    untagged_image_expiry_days: int = Field(7, ge=1, le=365, description="Untagged images expire after this many days.")
    protected_images_to_keep: int = Field(
        1000,
        ge=100,
        le=10000,
        description="Images the rollout tagged as live (tessera-live-*) that the lifecycle rules never expire, "
        "up to this many per repository (beyond it the oldest-pushed protected image may expire).",
    )
    noncurrent_model_version_days: int = Field(
        30, ge=1, le=3650, description="Overwritten or deleted objects in the model bucket are kept this many days."
    )
    access_log_retention_days: int = Field(365, ge=1, le=3650, description="Days the S3 server access logs are kept.")
    key_user_arns: list[str] = Field(
        default_factory=list,
        description="IAM role ARNs (wildcards allowed) that may use the artifacts key through S3, DynamoDB and ECR "
        "besides this environment's own roles and cluster.admin_role_arns / read_only_role_arns: people and "
        "pipelines that run the tessera CLI under other roles.",
    )

    promotion_peers: list[Annotated[str, Field(pattern=r"^\d{12}$")]] = Field(
        default_factory=list,
        description="Account ids of the environments that may promote this environment's model versions into "
        "theirs (`tessera models promote --from <this>`): their principals may read the model bucket's models/ and "
        "registered/ prefixes, and decrypt with the artifacts key through S3. Read only.",
    )

    @field_validator("promotion_peers")
    @classmethod
    def _distinct_peers(cls, accounts: list[str]) -> list[str]:
        raise_if_any(
            [
                f"[{index}] {account!r} is named twice"
                for index, account in enumerate(accounts)
                if account in accounts[:index]
            ]
        )
        return accounts

    @field_validator("key_user_arns")
    @classmethod
    def _role_arns(cls, arns: list[str]) -> list[str]:
        return iam_role_arns(arns, wildcards=True)
