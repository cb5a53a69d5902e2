"""Accelerator pools are one of two kinds, said in config (`kind: neuron | gpu`), each with only the attributes and the
limit of its accelerator (issue 23, problem 3): a GPU pool has no NeuronCores to ask about, and its GPU limit reaches
the rollout engine named for what it is."""

from __future__ import annotations

import pytest
import yaml

from rollout.capacity import max_pods
from rollout.contract import PoolCapacity
from stacks.config.accelerator_pools import GpuPoolConfig, NeuronPoolConfig, node_ceiling
from stacks.config.environment import config_path_for, parse_config
from stacks.config.errors import ConfigError
from stacks.rollout.settings import RoutingArns, pool_capacity, rollout_settings


def _dev() -> dict:
    return yaml.safe_load(config_path_for("dev").read_text())


def _pool(data: dict, name: str) -> dict:
    return next(pool for pool in data["cluster"]["accelerator_pools"] if pool["name"] == name)


def _problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="test")
    return raised.value.problems


def test_each_pool_is_parsed_as_its_kind() -> None:
    pools = {pool.name: pool for pool in parse_config(_dev(), source="test").cluster.accelerator_pools}
    assert isinstance(pools["trainium"], NeuronPoolConfig)
    assert isinstance(pools["inferentia"], NeuronPoolConfig)
    assert isinstance(pools["gpu"], GpuPoolConfig)


def test_a_gpu_pool_answers_in_gpus_and_has_no_neuron_attributes() -> None:
    data = _dev()
    _pool(data, "gpu").update(instance_types=["g6.2xlarge", "g6.12xlarge"], max_gpus=8)
    [gpu] = [pool for pool in parse_config(data, source="test").cluster.accelerator_pools if pool.name == "gpu"]
    assert gpu.largest_instance.name == "g6.12xlarge"
    assert gpu.accelerator_limit == 8
    assert node_ceiling(gpu, "g6.12xlarge") == 2
    for neuron_only in ("cores_per_device", "neuron_specs", "max_neuron_cores"):
        assert not hasattr(gpu, neuron_only), neuron_only


def test_a_neuron_pool_has_no_gpu_attributes() -> None:
    [trainium] = [p for p in parse_config(_dev(), source="test").cluster.accelerator_pools if p.name == "trainium"]
    assert trainium.largest_instance.name == "trn1.2xlarge"
    assert trainium.cores_per_device == 2
    for gpu_only in ("gpu_model", "compute_capability", "max_gpus", "gpu_specs"):
        assert not hasattr(trainium, gpu_only), gpu_only


def test_a_pool_without_a_kind_is_refused_by_name() -> None:
    data = _dev()
    del _pool(data, "gpu")["kind"]
    assert _problems(data) == ["cluster.accelerator_pools[2].kind: required field is missing (one of 'neuron', 'gpu')"]


def test_an_unknown_kind_is_refused_by_name() -> None:
    data = _dev()
    _pool(data, "gpu")["kind"] = "tpu"
    assert _problems(data) == ["cluster.accelerator_pools[2].kind: 'tpu' must be one of 'neuron', 'gpu'"]


def test_types_of_the_other_kind_are_refused_by_name() -> None:
    data = _dev()
    _pool(data, "gpu")["kind"] = "neuron"
    del _pool(data, "gpu")["max_gpus"]
    assert _problems(data) == [
        "cluster.accelerator_pools[2].instance_types[0]: 'g6.2xlarge' is an NVIDIA GPU type; a neuron pool takes "
        "Trainium or Inferentia2 types"
    ]


def test_the_other_kind_s_limit_is_an_unknown_key_with_the_allowed_ones() -> None:
    data = _dev()
    _pool(data, "gpu")["max_neuron_cores"] = 8
    [problem] = _problems(data)
    assert problem.startswith(
        "cluster.accelerator_pools[2].max_neuron_cores: unknown key 'max_neuron_cores'; only kind: neuron has it; "
    )
    assert "max_gpus" in problem.partition("allowed keys: ")[2]


def _gpu_capacity() -> PoolCapacity:
    data = _dev()
    _pool(data, "gpu").update(instance_types=["g6.12xlarge"], max_gpus=4)
    [gpu] = [pool for pool in parse_config(data, source="test").cluster.accelerator_pools if pool.name == "gpu"]
    return pool_capacity(gpu, 2)


def test_a_gpu_pool_s_limit_reaches_the_rollout_engine_named_for_its_unit() -> None:
    payload = _gpu_capacity().to_json()
    assert payload["unit"] == "GPU"
    assert payload["accelerator_limit"] == 4
    assert payload["per_pod"] == 2
    assert payload["instance_types"] == [{"name": "g6.12xlarge", "accelerators": 4}]
    assert "max_neuron_cores" not in payload


def test_a_pool_written_by_contract_version_1_still_reads() -> None:
    """A rollout started before the rename carries its plan's pool in the old names through a deploy."""
    legacy = {
        "name": "gpu",
        "max_nodes": 2,
        "max_neuron_cores": 4,
        "cores_per_pod": 2,
        "instance_types": [{"name": "g6.12xlarge", "cores": 4, "devices": 4}],
        "unit": "GPU",
    }
    assert PoolCapacity.from_json(legacy) == _gpu_capacity()


def test_a_service_on_a_gpu_pool_sizes_its_pods_in_gpus() -> None:
    """The settings of a service whose current target is a GPU pool count its pods' GPUs, not its (zero) cores:
    with zero per pod the capacity check divided by zero."""
    data = _dev()
    assistant = data["services"][0]
    assistant["accelerator"] = {"type": "gpu", "gpus": 1, "pool": "gpu"}
    assistant["image"]["tag"] = "vllm-0.16.0-cuda12.8"
    del assistant["image"]["neuron_sdk"]
    assistant["alternative_accelerators"] = []
    config = parse_config(data, source="test")
    [placed] = [service for service in config.placed_services if service.name == "assistant"]
    routing = RoutingArns(rule="rule", stable_target_group="stable", canary_target_group="canary", load_balancer="lb")
    settings = rollout_settings(placed, environment="dev", routing=routing, image_registry="r", model_bucket="b")
    assert settings.pool is not None
    assert (settings.pool.unit, settings.pool.per_pod) == ("GPU", 1)
    assert max_pods(settings.pool) == 2  # max_gpus 2 over g6.2xlarge's single GPU
