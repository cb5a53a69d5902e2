"""Cost per million requests of a track (rollout.cost), checked against figures worked out by hand."""

from __future__ import annotations

import json
import re

import pytest

from rollout.cost import Node, Pod, node_from_api, pod_from_api, quantity, track_cost
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tessera_shared.prices import PRICES_FILE, PriceTable, RegionPrices, price_table

# Round prices so that the hand arithmetic below stays readable.
PRICES = PriceTable(
    regions={
        "us-east-1": RegionPrices(
            as_of="2026-07-20",
            source="test",
            prices={"trn1.32xlarge": 20.0, "inf2.xlarge": 0.8, "g6.12xlarge": 4.0, "c7g.xlarge": 0.16},
        )
    }
)
TRN1 = Node("trn-a", "trn1.32xlarge", "on-demand", {"aws.amazon.com/neuroncore": 32, "cpu": 127.5})
INF2_SPOT = Node("inf-a", "inf2.xlarge", "spot", {"aws.amazon.com/neuroncore": 2, "cpu": 3.92})
G6 = Node("gpu-a", "g6.12xlarge", "on-demand", {"nvidia.com/gpu": 4, "cpu": 47.5})
C7G = Node("cpu-a", "c7g.xlarge", "on-demand", {"cpu": 4})
NODES = [TRN1, INF2_SPOT, G6, C7G]


def _cost(pods: list[Pod], *, requests: int = 720_000, seconds: float = 3600, region: str = "us-east-1"):
    return track_cost(pods, NODES, prices=PRICES, region=region, interval_seconds=seconds, requests=requests)


def test_accelerator_pods_pay_their_share_of_the_node_by_cores() -> None:
    # Two pods of 8 of the node's 32 cores: 2 x 8/32 x $20/h = $10/h. Over 1 h, 720,000 requests:
    # $10 / 720,000 x 1e6 = $13.888889 per million.
    pods = [Pod("a", "trn-a", {"aws.amazon.com/neuroncore": 8, "cpu": 6}) for _ in range(2)]
    cost = _cost(pods)
    assert cost.dollars_per_hour == pytest.approx(10.0)
    assert cost.cost_per_million_requests == pytest.approx(13.888889, rel=1e-6)
    assert not cost.upper_bound
    assert cost.reason is None


def test_gpu_pods_pay_by_gpus_and_the_interval_scales_the_cost() -> None:
    # 1 of 4 GPUs of a $4/h node: $1/h; over 30 min that is $0.50 for 100,000 requests: $5 per million.
    cost = _cost([Pod("g", "gpu-a", {"nvidia.com/gpu": 1, "cpu": 8})], requests=100_000, seconds=1800)
    assert cost.cost_per_million_requests == pytest.approx(5.0)


def test_cpu_pods_pay_by_vcpu_share() -> None:
    # 0.5 of 4 vCPUs of a $0.16/h node: $0.02/h; 3 pods: $0.06/h; 1 h, 1,200 requests: $50 per million.
    pods = [Pod(f"c{i}", "cpu-a", {"cpu": 0.5}) for i in range(3)]
    cost = _cost(pods, requests=1_200)
    assert cost.dollars_per_hour == pytest.approx(0.06)
    assert cost.cost_per_million_requests == pytest.approx(50.0)


def test_a_pod_on_a_spot_node_makes_the_figure_an_upper_bound() -> None:
    # The whole inf2.xlarge (2 of 2 cores) at its on-demand $0.80/h; 1 h, 800 requests: $1,000 per million.
    cost = _cost([Pod("s", "inf-a", {"aws.amazon.com/neuroncore": 2})], requests=800)
    assert cost.cost_per_million_requests == pytest.approx(1000.0)
    assert cost.upper_bound


def test_mixed_tracks_add_their_pods_shares() -> None:
    # $5/h (8/32 of trn1) + $0.04/h (1 of 4 vCPUs of c7g): $5.04/h; 2 h, 504,000 requests: $20 per million.
    pods = [Pod("t", "trn-a", {"aws.amazon.com/neuroncore": 8}), Pod("c", "cpu-a", {"cpu": 1})]
    cost = _cost(pods, requests=504_000, seconds=7200)
    assert cost.cost_per_million_requests == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("pods", "requests", "region", "reason"),
    [
        ([Pod("t", "trn-a", {"aws.amazon.com/neuroncore": 8})], 0, "us-east-1", "no requests"),
        ([Pod("t", None, {"aws.amazon.com/neuroncore": 8})], 10, "us-east-1", "no pods"),
        ([Pod("t", "gone", {"cpu": 1})], 10, "us-east-1", "node gone of pod t was not found"),
        ([Pod("t", "trn-a", {"aws.amazon.com/neuroncore": 8})], 10, "eu-west-1", "no on-demand price for trn1"),
        ([Pod("t", "cpu-a", {"aws.amazon.com/neuroncore": 2})], 10, "us-east-1", "advertises no allocatable"),
        ([Pod("t", "cpu-a", {})], 10, "us-east-1", "requests neither accelerators nor CPU"),
    ],
)
def test_no_figure_rather_than_a_made_up_one(pods: list[Pod], requests: int, region: str, reason: str) -> None:
    cost = _cost(pods, requests=requests, region=region)
    assert cost.cost_per_million_requests is None
    assert reason in (cost.reason or "")


def test_finished_pods_cost_nothing() -> None:
    pods = [Pod("old", "trn-a", {"aws.amazon.com/neuroncore": 32}, finished=True), Pod("c", "cpu-a", {"cpu": 1})]
    assert _cost(pods, requests=1_000).dollars_per_hour == pytest.approx(0.04)


def test_pods_and_nodes_are_read_from_api_objects() -> None:
    node = node_from_api(
        {
            "metadata": {
                "name": "ip-10-0-1-1",
                "labels": {"node.kubernetes.io/instance-type": "inf2.xlarge", "karpenter.sh/capacity-type": "spot"},
            },
            "status": {"allocatable": {"cpu": "3920m", "aws.amazon.com/neuroncore": "2", "memory": "15Gi"}},
        }
    )
    assert node == Node(
        "ip-10-0-1-1", "inf2.xlarge", "spot", {"cpu": 3.92, "aws.amazon.com/neuroncore": 2, "memory": 15 * 2**30}
    )
    pod = pod_from_api(
        {
            "metadata": {"name": "assistant-canary-1"},
            "spec": {
                "nodeName": "ip-10-0-1-1",
                "containers": [
                    {"resources": {"requests": {"cpu": "1500m"}, "limits": {"aws.amazon.com/neuroncore": "1"}}},
                    {"resources": {"requests": {"cpu": "500m"}}},
                ],
            },
            "status": {"phase": "Running"},
        }
    )
    assert pod == Pod("assistant-canary-1", "ip-10-0-1-1", {"cpu": 2.0, "aws.amazon.com/neuroncore": 1.0})


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("1Ki", 1024.0), ("1e3", 1000.0)])
def test_quantities(text: str, value: float) -> None:
    assert quantity(text) == pytest.approx(value)


def test_a_malformed_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("two")


def test_the_vendored_table_prices_every_neuron_type_it_does_not_declare_missing() -> None:
    table = price_table()
    data = json.loads(PRICES_FILE.read_text())
    for region, entry in data["regions"].items():
        assert entry["source"]
        assert re.match(r"^\d{4}-\d{2}-\d{2}$", entry["as_of"])
        priced = {name for name in NEURON_INSTANCE_TYPES if table.hourly(region, name) is not None}
        assert priced | set(entry["missing"]) >= set(NEURON_INSTANCE_TYPES)
    # One figure checked against its source line (Karpenter's generated table, us-east-1).
    assert table.hourly("us-east-1", "inf2.xlarge") == pytest.approx(0.7582)
    assert table.hourly("us-east-1", "trn2.48xlarge") is None


def test_device_pods_pay_by_devices() -> None:
    # 1 of trn1.32xlarge's 16 Neuron devices: 1/16 x $20/h = $1.25/h; 1 h, 1,250,000 requests: $1 per million.
    node = Node("trn-b", "trn1.32xlarge", "on-demand", {"aws.amazon.com/neuron": 16, "cpu": 127.5})
    pods = [Pod("d", "trn-b", {"aws.amazon.com/neuron": 1, "cpu": 4})]
    cost = track_cost(pods, [node], prices=PRICES, region="us-east-1", interval_seconds=3600, requests=1_250_000)
    assert cost.cost_per_million_requests == pytest.approx(1.0)
