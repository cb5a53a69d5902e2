"""Reading a track's pods and their nodes through the Kubernetes client (against KubernetesApiDouble, a test
double of the API server), and pricing them (rollout.track_cost)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from rollout.cost import TrackCost
from rollout.errors import RolloutError
from rollout.kube import client as kube_module
from rollout.kube.client import KubeClient
from rollout.track_cost import judgement_costs, measure_track_cost, track_selector
from tessera_shared.prices import PriceTable, RegionPrices
from tests.rollout.kube_double import KubernetesApiDouble

NAMESPACE = "inference"
PRICES = PriceTable(
    regions={
        "us-east-1": RegionPrices(as_of="2026-07-20", source="test", prices={"trn1.32xlarge": 20.0, "g6.12xlarge": 4.0})
    }
)


@pytest.fixture
def double() -> Iterator[KubernetesApiDouble]:
    with KubernetesApiDouble() as api:
        yield api


@pytest.fixture
def client(double: KubernetesApiDouble) -> KubeClient:
    return KubeClient(double.endpoint, token_provider=lambda: "k8s-aws-v1.token")


def _ten_minutes(client: KubeClient, track: str, *, requests: int) -> TrackCost:
    """Service `a`'s track over a ten-minute window in us-east-1, priced by the test table."""
    return measure_track_cost(
        SimpleNamespace(kube=client),
        namespace=NAMESPACE,
        service="a",
        track=track,
        region="us-east-1",
        interval_seconds=600,
        requests=requests,
        prices=PRICES,
    )


def _track_labels(service: str, track: str) -> dict[str, str]:
    return {"tessera.dev/service": service, "tessera.dev/track": track}


def test_pods_are_listed_by_label_selector(double: KubernetesApiDouble, client: KubeClient) -> None:
    double.add_pod(NAMESPACE, "a-canary-1", labels=_track_labels("a", "canary"), node="n1", requests={"cpu": "1"})
    double.add_pod(NAMESPACE, "a-stable-1", labels=_track_labels("a", "stable"), node="n1", requests={"cpu": "1"})
    double.add_pod("other", "a-canary-x", labels=_track_labels("a", "canary"), node="n1", requests={"cpu": "1"})
    pods = client.list_pods(NAMESPACE, track_selector("a", "canary"))
    assert [pod["metadata"]["name"] for pod in pods] == ["a-canary-1"]
    [path] = double.requests_for("GET")
    assert path.startswith(f"/api/v1/namespaces/{NAMESPACE}/pods?")
    assert "labelSelector=tessera.dev%2Fservice%3Da%2Ctessera.dev%2Ftrack%3Dcanary" in path


def test_node_lists_follow_continue_tokens(
    double: KubernetesApiDouble, client: KubeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(5):
        double.add_node(f"n{index}", instance_type="trn1.32xlarge", capacity_type="on-demand", allocatable={"cpu": "4"})
    monkeypatch.setattr(kube_module, "LIST_PAGE_SIZE", 2)
    names = [node["metadata"]["name"] for node in client.list_nodes()]
    assert names == ["n0", "n1", "n2", "n3", "n4"]
    # Three pages of at most two: the second and third ask to continue.
    paths = double.requests_for("GET")
    assert len(paths) == 3
    assert all(path.startswith("/api/v1/nodes?limit=2") for path in paths)
    assert ["continue=" in path for path in paths] == [False, True, True]


def test_an_unparseable_selector_is_a_bad_request(client: KubeClient) -> None:
    with pytest.raises(RolloutError, match=r"rejected list pods inference/ \(400\): unable to parse requirement"):
        client.list_pods(NAMESPACE, "tessera.dev/service in a")


def test_the_double_understands_set_and_existence_requirements(double: KubernetesApiDouble, client: KubeClient) -> None:
    double.add_pod(NAMESPACE, "p1", labels={"tier": "a"}, node=None, requests={"cpu": "1"})
    double.add_pod(NAMESPACE, "p2", labels={"tier": "b", "x": "1"}, node=None, requests={"cpu": "1"})
    double.add_pod(NAMESPACE, "p3", labels={}, node=None, requests={"cpu": "1"})

    def names(selector: str) -> list[str]:
        return [pod["metadata"]["name"] for pod in client.list_pods(NAMESPACE, selector)]

    assert names("tier in (a, b)") == ["p1", "p2"]
    assert names("tier notin (a)") == ["p2", "p3"]
    assert names("!x") == ["p1", "p3"]
    assert names("tier,x") == ["p2"]
    assert names("tier!=a") == ["p2", "p3"]


def test_a_tracks_cost_is_measured_from_its_pods_and_their_nodes(
    double: KubernetesApiDouble, client: KubeClient
) -> None:
    double.add_node(
        "trn-a",
        instance_type="trn1.32xlarge",
        capacity_type="on-demand",
        allocatable={"cpu": "127500m", "aws.amazon.com/neuroncore": "32"},
    )
    double.add_node(
        "gpu-a", instance_type="g6.12xlarge", capacity_type="spot", allocatable={"cpu": "47", "nvidia.com/gpu": "4"}
    )
    for index in range(2):
        double.add_pod(
            NAMESPACE,
            f"a-canary-{index}",
            labels=_track_labels("a", "canary"),
            node="trn-a",
            requests={"cpu": "6", "aws.amazon.com/neuroncore": "8"},
        )
    double.add_pod(
        NAMESPACE, "a-stable-0", labels=_track_labels("a", "stable"), node="gpu-a", requests={"nvidia.com/gpu": "2"}
    )
    canary = _ten_minutes(client, "canary", requests=50_000)
    # 2 x 8/32 x $20/h = $10/h; 10 minutes = $1.666667 for 50,000 requests: $33.333333 per million.
    assert canary.cost_per_million_requests == pytest.approx(33.333333, rel=1e-6)
    assert not canary.upper_bound
    stable = _ten_minutes(client, "stable", requests=50_000)
    # 2/4 x $4/h = $2/h on spot, charged on demand: $0.333333 for 50,000 requests, at most $6.666667 per million.
    assert stable.cost_per_million_requests == pytest.approx(6.666667, rel=1e-6)
    assert stable.upper_bound


def test_a_track_with_no_scheduled_pods_reads_no_nodes(double: KubernetesApiDouble, client: KubeClient) -> None:
    double.add_pod(NAMESPACE, "a-canary-0", labels=_track_labels("a", "canary"), node=None, requests={"cpu": "1"})
    cost = _ten_minutes(client, "canary", requests=10)
    assert cost.cost_per_million_requests is None
    assert cost.reason == "no pods of the track are on a node"
    assert not [path for path in double.requests_for("GET") if path.startswith("/api/v1/nodes")]


def test_reading_nodes_without_access_is_a_rollout_error(double: KubernetesApiDouble, client: KubeClient) -> None:
    double.fail_next("GET", 403, message='nodes is forbidden: User "tessera-rollout" cannot list resource "nodes"')
    with pytest.raises(RolloutError, match="forbids list on nodes"):
        client.list_nodes()


def test_a_single_node_or_pod_is_read_or_404(double: KubernetesApiDouble, client: KubeClient) -> None:
    double.add_node("n1", instance_type="trn1.32xlarge", capacity_type="spot", allocatable={"cpu": "4"})
    assert client._request("GET", kube_module.NODES, None, "n1")["kind"] == "Node"
    with pytest.raises(kube_module.NotFoundError, match="nodes n2 not found"):
        client._request("GET", kube_module.NODES, None, "n2")


def test_judgement_costs_record_each_track_and_a_reason_when_the_cluster_cannot_be_read(
    double: KubernetesApiDouble, client: KubeClient
) -> None:
    double.add_node(
        "trn-a",
        instance_type="trn1.32xlarge",
        capacity_type="on-demand",
        allocatable={"aws.amazon.com/neuroncore": "32"},
    )
    double.add_pod(
        NAMESPACE,
        "a-stable-0",
        labels=_track_labels("a", "stable"),
        node="trn-a",
        requests={"aws.amazon.com/neuroncore": "16"},
    )
    # The canary's pod list is refused (403); the stable track is still priced.
    double.fail_next("GET", 403, message='pods is forbidden: User "tessera-rollout" cannot list resource "pods"')
    costs = judgement_costs(
        SimpleNamespace(kube=client),
        namespace=NAMESPACE,
        service="a",
        requests={"canary": 100, "stable": 10_000},
        interval_seconds=3600,
        region="us-east-1",
        prices=PRICES,
    )
    assert costs["canary"]["cost_per_million_requests"] is None
    assert costs["canary"]["reason"].startswith("could not read the cluster: Kubernetes API forbids list on pods")
    # 16/32 x $20/h = $10 for 10,000 requests: $1,000 per million.
    assert costs["stable"]["cost_per_million_requests"] == pytest.approx(1000.0)
    assert costs["stable"]["reason"] is None
