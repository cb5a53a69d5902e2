"""What may run in `inference`: a ValidatingAdmissionPolicy (Kubernetes-native, no controller to run) that admits
a pod only when every container, init container and ephemeral container runs an image from one of this
environment's service repositories, by digest. The track owner pins tags to digests at deploy and rollouts deploy
by the registered digest (rollout/image_digests.py, registry/images.py), so Tessera's own pods pass; a pod someone
else creates there with a tag, or with an image from anywhere else, is refused with the images named."""

from __future__ import annotations

from collections.abc import Sequence

from tessera_shared.constants import NAMESPACE, POD_CONTAINER_LISTS

POLICY_NAME = "tessera-inference-images"
DIGEST_SUFFIX = "@sha256:[0-9a-f]{64}$"


def _admitted(container_list: str) -> str:
    """CEL: every container of the list (absent lists hold) runs an allowed repository's image by digest."""
    check = (
        f"object.spec.{container_list}.all(c, variables.repositories.exists(r, c.image.startsWith(r + '@sha256:'))"
        f" && c.image.matches('{DIGEST_SUFFIX}'))"
    )
    return check if container_list == "containers" else f"!has(object.spec.{container_list}) || ({check})"


def _refused(container_list: str) -> str:
    """CEL: the images of the list that the policy refuses, for the message."""
    images = (
        f"object.spec.{container_list}.filter(c, !(variables.repositories.exists(r, c.image.startsWith(r + "
        f"'@sha256:')) && c.image.matches('{DIGEST_SUFFIX}'))).map(c, c.image)"
    )
    return images if container_list == "containers" else f"(has(object.spec.{container_list}) ? {images} : [])"


def image_admission_objects(repository_uris: Sequence[str]) -> list[dict]:
    """The policy and its binding to the `inference` namespace. `repository_uris`: `<registry>/<repository>` of each
    service repository of this environment."""
    repositories = "[" + ", ".join(f"'{uri}'" for uri in repository_uris) + "]"
    refused = " + ".join(_refused(name) for name in POD_CONTAINER_LISTS)
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods", "pods/ephemeralcontainers"],
                    }
                ]
            },
            "variables": [{"name": "repositories", "expression": repositories}],
            "validations": [
                {
                    "expression": " && ".join(f"({_admitted(name)})" for name in POD_CONTAINER_LISTS),
                    "messageExpression": "'pods in " + NAMESPACE + " run images from the service repositories of this "
                    "environment, by digest (<repository>@sha256:...); refused: ' + (" + refused + ").join(', ')",
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "policyName": POLICY_NAME,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}},
        },
    }
    return [policy, binding]
