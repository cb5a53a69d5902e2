"""EKS bearer tokens: what `aws eks get-token` prints, a presigned STS GetCallerIdentity URL. The cluster maps
the caller's role to a Kubernetes identity through an access entry."""

from __future__ import annotations

import base64
from typing import Any

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the EKS token format, not a secret

CLUSTER_ID_HEADER = "x-k8s-aws-id"


def eks_token(sts_client: Any, cluster_name: str) -> str:
    """Return a bearer token for the EKS cluster `cluster_name`, as `aws eks get-token` does.

    The token is a presigned GetCallerIdentity URL that also signs the header `x-k8s-aws-id: <cluster>`,
    so that the token cannot be replayed against another cluster. The API server's authenticator calls
    the URL and maps the returned role to a Kubernetes identity. It is valid for 15 minutes
    (X-Amz-Expires=60 is what the authenticator expects; it applies its own window).

    `sts_client` is a boto3 STS client for the cluster's region (a regional endpoint).
    """
    events = sts_client.meta.events
    # Registered once per client (unique_id): the cluster name travels in the call's parameters and
    # context, not in a closure, so one client can sign tokens for several clusters concurrently.
    events.register(
        "provide-client-params.sts.GetCallerIdentity",
        _take_cluster_id,
        unique_id="tessera-eks-token-cluster-id",
    )
    events.register(
        "before-sign.sts.GetCallerIdentity",
        _sign_cluster_id,
        unique_id="tessera-eks-token-sign-header",
    )
    url = sts_client.generate_presigned_url(
        "get_caller_identity",
        Params={CLUSTER_ID_HEADER: cluster_name},
        ExpiresIn=60,
        HttpMethod="GET",
    )
    encoded = base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")
    return TOKEN_PREFIX + encoded


def _take_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Move the cluster name out of the API parameters (GetCallerIdentity has none) into the context."""
    if CLUSTER_ID_HEADER in params:
        context[CLUSTER_ID_HEADER] = params.pop(CLUSTER_ID_HEADER)


def _sign_cluster_id(request: Any, **_: Any) -> None:
    """Add the cluster name as a header just before signing, so that it is among the signed headers."""
    cluster = request.context.get(CLUSTER_ID_HEADER)
    if cluster is not None:
        request.headers[CLUSTER_ID_HEADER] = cluster
