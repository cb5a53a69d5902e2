"""The rollout's Kubernetes client against KubernetesApiDouble (a test double of the API server), and its
EKS token under moto."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rollout.errors import RolloutError, TransientError
from rollout.kube.client import TOKEN_REUSE_SECONDS, KubeClient
from rollout.kube.deployments import deployment_ready, ready_summary
from rollout.kube.token import eks_token
from tessera_shared.constants import HPA_KIND, MODEL_VERSION_LABEL, SCALED_OBJECT_KIND
from tests.fake_aws import use_fake_credentials
from tests.rollout.kube_double import KubernetesApiDouble

NAMESPACE = "tessera"
NAME = "assistant-canary"
PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}"
OLD_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/tessera/dev/assistant:1.0.0"
NEW_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/tessera/dev/assistant:1.1.0"
ENV = {
    "SERVICE_NAME": "assistant",
    "TRACK": "canary",
    "MODEL_NAME": "llama",
    "MODEL_VERSION": "v1",
    "MODEL_S3_URI": "s3://tessera-dev-models/models/assistant/v1/",
    "MODEL_CACHE_DIR": "/model-cache",
    "LOG_LEVEL": "info",
}
LABELS = {"app.kubernetes.io/name": "assistant", "tessera.dev/track": "canary"}


class Tokens:
    """A token provider that hands out a new, distinct token on every call and counts the calls."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self) -> str:
        self.issued.append(f"k8s-aws-v1.token-{len(self.issued) + 1}")
        return self.issued[-1]


@pytest.fixture
def api() -> Iterator[KubernetesApiDouble]:
    with KubernetesApiDouble() as double:
        double.add_deployment(NAMESPACE, NAME, replicas=2, image=OLD_IMAGE, env=ENV, labels=LABELS)
        yield double


@pytest.fixture
def tokens() -> Tokens:
    return Tokens()


@pytest.fixture
def client(api: KubernetesApiDouble, tokens: Tokens) -> KubeClient:
    return KubeClient(api.endpoint, tokens, timeout=5)


def server_container(deployment: dict) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "server")


def env_of(deployment: dict) -> list[tuple[str, str]]:
    return [(e["name"], e["value"]) for e in server_container(deployment)["env"]]


def set_new_version(client: KubeClient) -> dict:
    return client.set_version(
        NAMESPACE,
        NAME,
        image=NEW_IMAGE,
        model_version="v2",
        model_uri="s3://tessera-dev-models/models/assistant/v2/",
    )


# -- reading and writing --------------------------------------------------------------------------


def test_get_deployment_returns_the_stored_object_with_a_bearer_token(
    client: KubeClient, api: KubernetesApiDouble, tokens: Tokens
):
    deployment = client.get_deployment(NAMESPACE, NAME)

    assert deployment["metadata"]["name"] == NAME
    assert deployment["metadata"]["resourceVersion"] == api.deployment(NAMESPACE, NAME)["metadata"]["resourceVersion"]
    assert server_container(deployment)["image"] == OLD_IMAGE
    assert api.requests == [("GET", PATH)]
    assert api.tokens == tokens.issued == ["k8s-aws-v1.token-1"]


def test_set_version_changes_image_env_and_label_in_place_and_bumps_generation(
    client: KubeClient, api: KubernetesApiDouble
):
    before = api.deployment(NAMESPACE, NAME)

    returned = set_new_version(client)

    stored = api.deployment(NAMESPACE, NAME)
    assert returned["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert server_container(stored)["image"] == NEW_IMAGE
    # Same entries in the same order; only the two model entries changed.
    assert env_of(stored) == [
        (name, {"MODEL_VERSION": "v2", "MODEL_S3_URI": "s3://tessera-dev-models/models/assistant/v2/"}.get(name, value))
        for name, value in ENV.items()
    ]
    assert stored["spec"]["template"]["metadata"]["labels"] == {**LABELS, MODEL_VERSION_LABEL: "v2"}
    assert stored["spec"]["replicas"] == 2
    assert stored["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert int(stored["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert api.requests == [("GET", PATH), ("PUT", PATH)]


def test_set_version_replaces_a_value_from_and_appends_missing_entries(api: KubernetesApiDouble, tokens: Tokens):
    api.add_deployment(NAMESPACE, "other", env={"LOG_LEVEL": "debug"}, labels={"app": "other"})

    def from_config_map(deployment: dict) -> None:
        server_container(deployment)["env"].insert(
            0, {"name": "MODEL_VERSION", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "version"}}}
        )

    api.update(NAMESPACE, "other", from_config_map)

    KubeClient(api.endpoint, tokens).set_version(
        NAMESPACE, "other", image=NEW_IMAGE, model_version="v9", model_uri="s3://b/v9/"
    )

    assert server_container(api.deployment(NAMESPACE, "other"))["env"] == [
        {"name": "MODEL_VERSION", "value": "v9"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "MODEL_S3_URI", "value": "s3://b/v9/"},
    ]


def test_set_version_to_the_version_already_set_writes_nothing(client: KubeClient, api: KubernetesApiDouble):
    first = set_new_version(client)

    again = set_new_version(client)

    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert api.deployment(NAMESPACE, NAME)["metadata"]["generation"] == 2
    assert api.requests_for("PUT") == [PATH]


def test_set_version_without_a_server_container_is_a_rollout_error(api: KubernetesApiDouble, tokens: Tokens):
    api.add_deployment(NAMESPACE, "odd")
    api.update(NAMESPACE, "odd", lambda d: server_container(d).update(name="main"))

    with pytest.raises(RolloutError, match="deployment odd has no container named 'server'"):
        KubeClient(api.endpoint, tokens).set_version(
            NAMESPACE, "odd", image=NEW_IMAGE, model_version="v2", model_uri="s3://b/"
        )
    assert api.requests_for("PUT") == []


def test_scale_sets_replicas_and_bumps_generation(client: KubeClient, api: KubernetesApiDouble):
    returned = client.scale(NAMESPACE, NAME, 0)

    stored = api.deployment(NAMESPACE, NAME)
    assert stored["spec"]["replicas"] == returned["spec"]["replicas"] == 0
    assert stored["metadata"]["generation"] == 2
    assert server_container(stored)["image"] == OLD_IMAGE


def test_scale_refuses_a_negative_count_before_calling_the_api(client: KubeClient, api: KubernetesApiDouble):
    with pytest.raises(ValueError, match="replicas"):
        client.scale(NAMESPACE, NAME, -1)
    assert api.requests == []


# -- optimistic concurrency -----------------------------------------------------------------------


def test_a_conflict_is_retried_on_a_fresh_read(client: KubeClient, api: KubernetesApiDouble):
    initial = api.deployment(NAMESPACE, NAME)["metadata"]["resourceVersion"]
    api.fail_next("PUT", 409)

    result = set_new_version(client)

    assert api.requests == [("GET", PATH), ("PUT", PATH), ("GET", PATH), ("PUT", PATH)]
    assert result["metadata"]["resourceVersion"] != initial
    assert server_container(api.deployment(NAMESPACE, NAME))["image"] == NEW_IMAGE
    assert api.deployment(NAMESPACE, NAME)["metadata"]["generation"] == 2


def test_a_concurrent_write_between_read_and_put_is_kept(client: KubeClient, api: KubernetesApiDouble):
    """Someone else (here another client, as the HPA would) scales the deployment after our GET and before
    our PUT: the server refuses our stale PUT, and the retry applies our change on top of theirs."""
    other = KubeClient(api.endpoint, Tokens())
    seen_versions: list[str] = []

    def change(deployment: dict) -> None:
        seen_versions.append(deployment["metadata"]["resourceVersion"])
        if len(seen_versions) == 1:
            other.scale(NAMESPACE, NAME, 5)
        server_container(deployment)["image"] = NEW_IMAGE

    client.replace_deployment(NAMESPACE, NAME, change)

    stored = api.deployment(NAMESPACE, NAME)
    assert stored["spec"]["replicas"] == 5
    assert server_container(stored)["image"] == NEW_IMAGE
    assert len(seen_versions) == 2
    assert seen_versions[0] != seen_versions[1]
    assert stored["metadata"]["generation"] == 3  # their spec change, then ours


@pytest.mark.parametrize(("conflicts", "succeeds"), [(4, True), (5, False)])
def test_conflicts_are_retried_up_to_five_attempts(
    client: KubeClient, api: KubernetesApiDouble, conflicts: int, succeeds: bool
):
    api.fail_next("PUT", 409, times=conflicts)

    if succeeds:
        set_new_version(client)
        assert server_container(api.deployment(NAMESPACE, NAME))["image"] == NEW_IMAGE
    else:
        with pytest.raises(TransientError, match="409"):
            set_new_version(client)
        assert server_container(api.deployment(NAMESPACE, NAME))["image"] == OLD_IMAGE
    assert len(api.requests_for("PUT")) == min(conflicts + 1, 5)
    assert len(api.requests_for("GET")) == len(api.requests_for("PUT"))


# -- errors ---------------------------------------------------------------------------------------


def test_missing_deployment_is_a_rollout_error_naming_it(client: KubeClient):
    with pytest.raises(RolloutError, match=r"^deployments.apps tessera/nope not found$"):
        client.get_deployment(NAMESPACE, "nope")
    with pytest.raises(RolloutError, match=r"^deployments.apps tessera/nope not found$"):
        client.scale(NAMESPACE, "nope", 1)


def test_a_refused_token_is_replaced_once(client: KubeClient, api: KubernetesApiDouble, tokens: Tokens):
    api.fail_next("GET", 401)

    deployment = client.get_deployment(NAMESPACE, NAME)

    assert deployment["metadata"]["name"] == NAME
    assert tokens.issued == ["k8s-aws-v1.token-1", "k8s-aws-v1.token-2"]
    assert api.tokens == tokens.issued
    # The fresh token is the one kept for later requests.
    client.get_deployment(NAMESPACE, NAME)
    assert api.tokens[-1] == "k8s-aws-v1.token-2"
    assert len(tokens.issued) == 2


def test_a_revoked_token_is_replaced(client: KubeClient, api: KubernetesApiDouble, tokens: Tokens):
    client.get_deployment(NAMESPACE, NAME)
    api.revoke(tokens.issued[0])

    client.scale(NAMESPACE, NAME, 3)

    assert api.deployment(NAMESPACE, NAME)["spec"]["replicas"] == 3
    assert api.tokens == ["k8s-aws-v1.token-1", "k8s-aws-v1.token-1", "k8s-aws-v1.token-2", "k8s-aws-v1.token-2"]


def test_credentials_refused_twice_is_a_rollout_error(client: KubeClient, api: KubernetesApiDouble, tokens: Tokens):
    api.fail_next("GET", 401, times=2)

    with pytest.raises(RolloutError, match="Kubernetes API refused the credentials"):
        client.get_deployment(NAMESPACE, NAME)
    assert len(tokens.issued) == 2
    assert len(api.requests) == 2


def test_a_token_that_is_not_an_eks_token_is_refused(api: KubernetesApiDouble):
    with pytest.raises(RolloutError, match="refused the credentials"):
        KubeClient(api.endpoint, lambda: "not-a-token").get_deployment(NAMESPACE, NAME)


def test_the_token_is_reused_until_ten_minutes_old(api: KubernetesApiDouble, tokens: Tokens):
    now = [1000.0]
    client = KubeClient(api.endpoint, tokens, clock=lambda: now[0])
    assert tokens.issued == []  # lazily

    client.get_deployment(NAMESPACE, NAME)
    now[0] += TOKEN_REUSE_SECONDS - 1
    client.get_deployment(NAMESPACE, NAME)
    assert len(tokens.issued) == 1

    now[0] += 1
    client.get_deployment(NAMESPACE, NAME)
    assert api.tokens == ["k8s-aws-v1.token-1", "k8s-aws-v1.token-1", "k8s-aws-v1.token-2"]


@pytest.mark.parametrize(("method", "verb"), [("GET", "get"), ("PUT", "update")])
def test_forbidden_is_a_rollout_error_naming_verb_and_resource(
    client: KubeClient, api: KubernetesApiDouble, method: str, verb: str
):
    api.fail_next(method, 403, message='User "tessera-rollout" cannot do this')

    with pytest.raises(RolloutError, match=rf"forbids {verb} on deployments.apps tessera/{NAME}.*lacks access") as info:
        client.scale(NAMESPACE, NAME, 1)
    assert 'User "tessera-rollout" cannot do this' in str(info.value)


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("code", [429, 500, 503, 504])
def test_throttling_and_server_errors_are_transient(
    client: KubeClient, api: KubernetesApiDouble, method: str, code: int
):
    api.fail_next(method, code)

    with pytest.raises(TransientError, match=str(code)):
        client.scale(NAMESPACE, NAME, 1)
    assert api.deployment(NAMESPACE, NAME)["spec"]["replicas"] == 2


def test_an_invalid_object_is_a_rollout_error_with_the_api_message(client: KubeClient, api: KubernetesApiDouble):
    def break_selector(deployment: dict) -> None:
        deployment["spec"]["template"]["metadata"]["labels"]["tessera.dev/track"] = "stable"

    with pytest.raises(RolloutError, match=r"422.*`selector` does not match template `labels`") as info:
        client.replace_deployment(NAMESPACE, NAME, break_selector)
    assert not isinstance(info.value, TransientError)
    assert api.requests_for("PUT") == [PATH]


def test_an_unreachable_server_is_transient(tokens: Tokens):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    # Nothing listens on the port any more: connection refused.
    with pytest.raises(TransientError, match="cannot reach"):
        KubeClient(f"http://127.0.0.1:{port}", tokens, timeout=2).get_deployment(NAMESPACE, NAME)


def test_a_server_that_does_not_answer_is_transient(tokens: Tokens):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), never answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(TransientError):
            KubeClient(endpoint, tokens, timeout=0.3).get_deployment(NAMESPACE, NAME)


# -- TLS with the cluster CA ----------------------------------------------------------------------


def _certificate_authority(common_name: str) -> tuple[Any, Any, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def cluster_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, str, str]:
    """A server context for 127.0.0.1 signed by a throwaway cluster CA; that CA's and another CA's data
    as EKS reports it (base64 of PEM)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_key, ca_cert, ca_pem = _certificate_authority("kubernetes")
    _, _, other_pem = _certificate_authority("kubernetes")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem")
    return server, base64.b64encode(ca_pem).decode(), base64.b64encode(other_pem).decode()


def test_https_with_the_cluster_ca(cluster_tls: tuple[ssl.SSLContext, str, str], tokens: Tokens):
    server, ca_data, _ = cluster_tls
    with KubernetesApiDouble(tls=server) as api:
        api.add_deployment(NAMESPACE, NAME)
        assert api.endpoint.startswith("https://")

        deployment = KubeClient(api.endpoint, tokens, ca_data=ca_data).get_deployment(NAMESPACE, NAME)

    assert deployment["metadata"]["name"] == NAME


def test_https_with_a_certificate_from_another_ca_is_a_rollout_error(
    cluster_tls: tuple[ssl.SSLContext, str, str], tokens: Tokens
):
    server, _, other_ca_data = cluster_tls
    with KubernetesApiDouble(tls=server) as api:
        api.add_deployment(NAMESPACE, NAME)

        with pytest.raises(RolloutError, match="certificate"):
            KubeClient(api.endpoint, tokens, ca_data=other_ca_data).get_deployment(NAMESPACE, NAME)
        assert api.requests == []  # the token never left the client


def test_ca_data_that_is_not_a_base64_pem_certificate_is_refused(tokens: Tokens):
    with pytest.raises(RolloutError, match="CA data"):
        KubeClient("https://example.eks.amazonaws.com", tokens, ca_data=base64.b64encode(b"not a cert").decode())


# -- readiness ------------------------------------------------------------------------------------


def deployment(wanted: int | None, *, generation: int = 2, **status: int) -> dict:
    spec = {} if wanted is None else {"replicas": wanted}
    return {"metadata": {"generation": generation}, "spec": spec, "status": status}


ALL_THREE = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}


@pytest.mark.parametrize(
    ("case", "ready"),
    [
        (deployment(3, **ALL_THREE), True),
        (deployment(3, **(ALL_THREE | {"observedGeneration": 3})), True),
        (deployment(3, **(ALL_THREE | {"observedGeneration": 1})), False),  # new spec not yet seen
        (deployment(3, **{k: v for k, v in ALL_THREE.items() if k != "observedGeneration"}), False),
        (deployment(3, **(ALL_THREE | {"updatedReplicas": 2})), False),
        (deployment(3, **(ALL_THREE | {"readyReplicas": 2})), False),
        (deployment(3, **(ALL_THREE | {"availableReplicas": 2})), False),
        (deployment(3, **(ALL_THREE | {"unavailableReplicas": 1})), False),
        (deployment(3, **(ALL_THREE | {"replicas": 4})), False),  # an old pod still serving
        (deployment(4, **ALL_THREE), False),  # scaling up
        (deployment(2, **ALL_THREE), False),  # scaling down
        (deployment(0, observedGeneration=2), True),  # counts missing: 0
        (deployment(0, observedGeneration=2, replicas=1, readyReplicas=1, availableReplicas=1), False),
        (deployment(1, observedGeneration=2), False),
        (deployment(None, **(ALL_THREE | dict.fromkeys(ALL_THREE.keys() - {"observedGeneration"}, 1))), True),
        ({"metadata": {"generation": 1}, "spec": {"replicas": 0}}, False),  # no status yet
    ],
)
def test_deployment_ready(case: dict, ready: bool):
    assert deployment_ready(case) is ready


def test_ready_summary():
    summary = ready_summary(
        deployment(
            3, generation=5, observedGeneration=5, replicas=4, updatedReplicas=3, readyReplicas=2, unavailableReplicas=1
        )
    )
    assert summary == "2/3 ready, 3 updated, 1 unavailable, 1 outdated (generation 5 observed 5)"
    assert ready_summary(deployment(3, **ALL_THREE)) == "3/3 ready, 3 updated (generation 2 observed 2)"


def test_a_rollout_becomes_ready_after_the_configured_reads(client: KubeClient, api: KubernetesApiDouble):
    api.set_ready_after_reads(NAMESPACE, NAME, 2)
    assert deployment_ready(client.get_deployment(NAMESPACE, NAME))  # no change pending

    set_new_version(client)

    first, second, third = (client.get_deployment(NAMESPACE, NAME) for _ in range(3))
    assert not deployment_ready(first)
    assert not deployment_ready(second)
    assert ready_summary(second) == "2/2 ready, 0 updated, 2 outdated (generation 2 observed 2)"
    assert deployment_ready(third)
    assert server_container(third)["image"] == NEW_IMAGE
    # The controller's status update is a write: a PUT based on a read before it would conflict.
    assert third["metadata"]["resourceVersion"] != second["metadata"]["resourceVersion"]


def test_scaling_up_is_not_ready_until_the_new_pods_are_available(client: KubeClient, api: KubernetesApiDouble):
    api.set_ready_after_reads(NAMESPACE, NAME, 1)

    client.scale(NAMESPACE, NAME, 4)

    during = client.get_deployment(NAMESPACE, NAME)
    assert not deployment_ready(during)
    assert ready_summary(during) == "2/4 ready, 2 updated, 2 unavailable (generation 2 observed 2)"
    assert deployment_ready(client.get_deployment(NAMESPACE, NAME))


# -- EKS token ------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        yield


def decode_token(token: str) -> urllib.parse.SplitResult:
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    assert "=" not in encoded
    return urllib.parse.urlsplit(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())


@pytest.mark.usefixtures("aws")
def test_eks_token_is_a_presigned_get_caller_identity_url_bound_to_the_cluster():
    sts = boto3.client("sts", region_name="us-east-1")

    url = decode_token(eks_token(sts, "tessera-dev"))

    query = urllib.parse.parse_qs(url.query)
    assert url.scheme == "https"
    assert url.hostname == "sts.us-east-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["Version"] == ["2011-06-15"]
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "host" in query["X-Amz-SignedHeaders"][0].split(";")
    assert "x-k8s-aws-id" not in query  # a signed header, not a query parameter


@pytest.mark.usefixtures("aws")
def test_each_eks_token_signs_its_own_cluster_name():
    sts = boto3.client("sts", region_name="us-east-1")
    signed_for: list[str] = []
    sts.meta.events.register_last(
        "before-sign.sts.GetCallerIdentity",
        lambda request, **_: signed_for.append(request.headers.get("x-k8s-aws-id")),
    )

    for cluster in ("tessera-dev", "tessera-prod", "tessera-dev"):
        eks_token(sts, cluster)

    assert signed_for == ["tessera-dev", "tessera-prod", "tessera-dev"]
    # The handlers only act when presigning with a cluster name: ordinary calls are untouched.
    sts.get_caller_identity()
    assert signed_for[-1] is None


def test_the_floor_of_a_keda_service_goes_to_its_scaled_object_not_to_keda_s_hpa(
    client: KubeClient, api: KubernetesApiDouble
):
    api.add_scaled_object("inference", "assistant-stable", min_replicas=1, max_replicas=4)
    assert client.autoscaler_floor("inference", SCALED_OBJECT_KIND, "assistant-stable") == 1
    client.set_autoscaler_floor("inference", SCALED_OBJECT_KIND, "assistant-stable", 9)
    spec = api.autoscaler("inference", "assistant-stable")["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (4, 4)  # never above the maximum
    assert "minReplicas" not in spec
    assert ("PUT", "/apis/keda.sh/v1alpha1/namespaces/inference/scaledobjects/assistant-stable") in api.requests


def test_a_scaled_object_floor_of_zero_is_restored_as_zero(client: KubeClient, api: KubernetesApiDouble):
    """Scale to zero (when config asks for it) survives a rollout: the restore writes the original 0 back."""
    api.add_scaled_object("inference", "gateway-stable", min_replicas=0, max_replicas=4)
    before = client.autoscaler_floor("inference", SCALED_OBJECT_KIND, "gateway-stable")
    client.set_autoscaler_floor("inference", SCALED_OBJECT_KIND, "gateway-stable", 2)
    client.set_autoscaler_floor("inference", SCALED_OBJECT_KIND, "gateway-stable", before)
    assert api.autoscaler_floor("inference", "gateway-stable") == 0


def test_an_hpa_floor_is_at_least_one(client: KubeClient, api: KubernetesApiDouble):
    api.add_autoscaler("inference", "embeddings-stable", min_replicas=1, max_replicas=3)
    client.set_autoscaler_floor("inference", HPA_KIND, "embeddings-stable", 0)
    assert api.autoscaler("inference", "embeddings-stable")["spec"]["minReplicas"] == 1


def test_placement_change_moves_a_pod_between_chips_and_keeps_the_rest_as_rendered() -> None:
    """Issue 15: a change of chip rewrites node selector, tolerations, scheduler and accelerator resources
    only; cpu, memory and storage stay as config rendered them, and running_placement reads back what it wrote."""
    from rollout.contract import TrackPlacement
    from rollout.kube.deployments import placement_change, running_placement

    neuron = TrackPlacement(
        pool="trainium",
        node_selector={"tessera.dev/accelerator": "trainium", "tessera.dev/pool": "trainium"},
        tolerations=[{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}],
        resources={"aws.amazon.com/neuroncore": "3"},
        scheduler_name="my-scheduler",
    )
    gpu = TrackPlacement(
        pool="gpu",
        node_selector={"tessera.dev/accelerator": "gpu", "tessera.dev/pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        resources={"nvidia.com/gpu": "1"},
    )
    amounts = {"cpu": "6", "memory": "24Gi", "ephemeral-storage": "104448Mi"}
    server = {"name": "server", "resources": {"requests": dict(amounts), "limits": dict(amounts)}}
    deployment = {"metadata": {"name": "assistant-canary"}, "spec": {"template": {"spec": {"containers": [server]}}}}
    placement_change(neuron)(deployment)
    assert running_placement(deployment) == neuron
    placement_change(gpu)(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert "schedulerName" not in pod
    assert pod["containers"][0]["resources"]["requests"] == {**amounts, "nvidia.com/gpu": "1"}
    assert pod["containers"][0]["resources"]["limits"] == {**amounts, "nvidia.com/gpu": "1"}
    assert running_placement(deployment) == gpu


def test_a_version_change_points_the_model_loader_at_the_same_version_and_image() -> None:
    """The loader init container loads what the server will serve: both move together, other init containers
    stay as they are."""
    from rollout.kube.deployments import version_change

    env = [{"name": "MODEL_VERSION", "value": "v1"}, {"name": "MODEL_S3_URI", "value": "s3://b/models/assistant/v1/"}]
    deployment = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [
                        {"name": "model-loader", "image": "old", "env": [dict(e) for e in env]},
                        {"name": "other", "image": "kept", "env": [dict(e) for e in env]},
                    ],
                    "containers": [{"name": "server", "image": "old", "env": [dict(e) for e in env]}],
                }
            }
        }
    }
    version_change(NEW_IMAGE, "v2", "s3://b/models/assistant/v2/")(deployment)
    pod = deployment["spec"]["template"]["spec"]
    loader, other = pod["initContainers"]
    for container in (loader, pod["containers"][0]):
        assert container["image"] == NEW_IMAGE
        assert {e["name"]: e["value"] for e in container["env"]} == {
            "MODEL_VERSION": "v2",
            "MODEL_S3_URI": "s3://b/models/assistant/v2/",
        }
    assert other["image"] == "kept"
    assert other["env"] == env
