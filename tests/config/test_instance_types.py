"""The Neuron instance table and the instance-family helpers that config validation relies on."""

from __future__ import annotations

import pytest

from stacks.config.instance_types import NEURON_INSTANCE_TYPES, family_of, is_graviton, is_neuron_family


@pytest.mark.parametrize(
    ("name", "chips", "cores", "memory_gib", "efa"),
    [
        ("inf2.xlarge", 1, 2, 32, 0),
        ("inf2.48xlarge", 12, 24, 384, 0),
        ("trn1.2xlarge", 1, 2, 32, 0),
        ("trn1.32xlarge", 16, 32, 512, 8),
        ("trn1n.32xlarge", 16, 32, 512, 16),
        ("trn2.48xlarge", 16, 64, 1536, 16),
    ],
)
def test_table_matches_published_specs(name: str, chips: int, cores: int, memory_gib: int, efa: int) -> None:
    spec = NEURON_INSTANCE_TYPES[name]
    assert (spec.chips, spec.cores, spec.accelerator_memory_gib, spec.efa_interfaces) == (chips, cores, memory_gib, efa)


def test_every_type_is_keyed_by_its_name_and_family() -> None:
    for name, spec in NEURON_INSTANCE_TYPES.items():
        assert spec.name == name
        assert family_of(name) == spec.family
        assert spec.cores % spec.chips == 0


@pytest.mark.parametrize(("name", "accelerator"), [("inf2.24xlarge", "inferentia"), ("trn2.48xlarge", "trainium")])
def test_accelerator_kind(name: str, accelerator: str) -> None:
    assert NEURON_INSTANCE_TYPES[name].accelerator == accelerator


@pytest.mark.parametrize("name", ["m7g.large", "c7g.xlarge", "c7gn.2xlarge", "r8gd.metal", "t4g.small", "x2gd.large"])
def test_graviton_types(name: str) -> None:
    assert is_graviton(name)
    assert not is_neuron_family(name)


@pytest.mark.parametrize("name", ["m7i.large", "c7a.xlarge", "g5.xlarge", "inf2.xlarge", "trn1n.32xlarge", "nonsense"])
def test_not_graviton(name: str) -> None:
    assert not is_graviton(name)


def test_family_of_rejects_malformed_names() -> None:
    assert family_of("trn1") is None
    assert family_of("TRN1.2XLARGE") is None
