"""Names of resources that several stacks derive on their own instead of passing outputs around."""

from __future__ import annotations


def model_bucket_name(environment_name: str, *, account: str, region: str) -> str:
    """The model bucket is named from account and region, so later stacks, pods and the operator CLI
    can name it without a look-up (bucket names are global; account and region keep it unique)."""
    return f"tessera-{environment_name}-models-{account}-{region}"


def registry_table_name(environment_name: str) -> str:
    return f"tessera-{environment_name}-model-registry"


def cluster_name(environment_name: str) -> str:
    """The EKS cluster's name; the Network stack tags the private subnets with it for Karpenter."""
    return f"tessera-{environment_name}"


def rollout_state_machine_name(environment_name: str) -> str:
    return f"tessera-{environment_name}-rollout"


def publisher_role_name(environment_name: str) -> str:
    """The one role that may write model versions (stacks/artifacts/model_bucket_policy.py); the operator CLI's
    users assume it to upload."""
    return f"tessera-{environment_name}-model-publisher"


def register_role_name(environment_name: str) -> str:
    """The register function's role: the model bucket's policy names it (the Artifacts stack cannot reference
    the Registration stack, which depends on it), as the only writer of the registry's records in the bucket."""
    return f"tessera-{environment_name}-register"


def rollout_role_name(environment_name: str) -> str:
    """The rollout function's role: the service repositories' policies let it re-tag the images it deploys."""
    return f"tessera-{environment_name}-rollout"


def registration_bus_name(environment_name: str) -> str:
    """The environment's event bus for registration announcements: only the register function publishes there,
    and the auto-start rules listen there (not on the default bus, where anyone allowed PutEvents publishes)."""
    return f"tessera-{environment_name}-registrations"
