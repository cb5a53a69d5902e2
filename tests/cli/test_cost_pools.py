"""`tessera cost`'s pools follow the same rules as the stacks (issue 23, problems 1 and 2): a GPU pool's ceiling
counts its GPU limit, and the Neuron scheduler pool is priced wherever the Cluster stack creates it."""

from __future__ import annotations

import inspect

import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.services.placement import needs_neuron_scheduler
from stacks.tessera_app import build_tessera
from tessera_cli.cost import HOURS_PER_MONTH, pool_costs
from tessera_shared.prices import price_table

REGION = "us-east-1"


def _dev() -> dict:
    return yaml.safe_load(config_path_for("dev").read_text())


def _pool(rows: list[dict], name: str) -> dict:
    return next(row for row in rows if row["name"] == name)


def test_a_gpu_pool_s_ceiling_counts_its_gpu_limit() -> None:
    """Four 4-GPU nodes allowed, but max_gpus 4: Karpenter launches one g6.12xlarge, so the ceiling is one node."""
    data = _dev()
    [gpu] = [pool for pool in data["cluster"]["accelerator_pools"] if pool["name"] == "gpu"]
    gpu |= {"instance_types": ["g6.12xlarge"], "max_nodes": 4, "max_gpus": 4}
    config = parse_config(data, source="test")
    prices = price_table()
    row = _pool(pool_costs(config, prices, REGION), "gpu")
    assert row["ceiling_nodes"] == 1
    hourly = prices.hourly(REGION, "g6.12xlarge")
    assert hourly is not None
    assert row["monthly_usd_at_ceiling"] == round(hourly * HOURS_PER_MONTH, 2)


def _gpu_service_with_a_three_core_trainium_alternative() -> EnvironmentConfig:
    data = _dev()
    [trainium] = [pool for pool in data["cluster"]["accelerator_pools"] if pool["name"] == "trainium"]
    trainium["instance_types"] = ["trn1.32xlarge"]  # 2 cores per device: 3 cores need the scheduler extension
    assistant = data["services"][0]
    assistant["accelerator"] = {"type": "gpu", "gpus": 1, "pool": "gpu"}
    assistant["image"]["tag"] = "vllm-0.16.0-cuda12.8"
    del assistant["image"]["neuron_sdk"]
    assistant["alternative_accelerators"] = [
        {
            "type": "trainium",
            "neuron_cores": 3,
            "pool": "trainium",
            "image_tag": "vllm-0.16.0-neuronx-sdk2.31.1",
            "neuron_sdk": "2.31.1",
        }
    ]
    return parse_config(data, source="test")


def test_the_scheduler_pool_is_priced_where_an_allowed_target_needs_it() -> None:
    config = _gpu_service_with_a_three_core_trainium_alternative()
    assert needs_neuron_scheduler(config)  # no current placement needs it; the alternative does
    names = [row["name"] for row in pool_costs(config, price_table(), REGION)]
    assert "scheduler" in names


def test_dev_needs_no_scheduler_pool_and_cost_prices_none() -> None:
    config = parse_config(_dev(), source="test")
    assert not needs_neuron_scheduler(config)
    assert "scheduler" not in [row["name"] for row in pool_costs(config, price_table(), REGION)]


def test_the_stacks_and_cost_ask_the_same_question() -> None:
    """One rule: the app builder hands the Cluster stack what needs_neuron_scheduler says."""
    assert "neuron_scheduler=needs_neuron_scheduler(config)" in inspect.getsource(build_tessera)
