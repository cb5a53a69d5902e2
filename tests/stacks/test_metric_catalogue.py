"""The metric catalogue (lambda/tessera_shared/metrics.py) against its sources: every Container Insights metric
is declared by the vendored CloudWatch agent with exactly the dimension set Tessera queries it by, and a query
with any other set is refused before it reaches a template."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tessera_shared import metrics

AGENT_FILE = (
    Path(__file__).resolve().parents[2]
    / "stacks"
    / "observability"
    / "data"
    / "amazon-cloudwatch-agent-v1.300071.0-awsemf-kubernetes.go"
)
AGENT_SHA256 = "f80f99fd3d9ea51c216d4b03f68263d01c6e9d3bf50fca90cb8084f3d9c18bcd"
DIMENSION_SET = re.compile(r'\{("[A-Za-z]+"(?:,\s*"[A-Za-z]+")*)\}')
CONTAINER_INSIGHTS = [m for m in metrics.ALL if m.namespace == metrics.CONTAINER_INSIGHTS_NAMESPACE]


def _agent_source() -> str:
    raw = AGENT_FILE.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == AGENT_SHA256, "not the reviewed agent file"
    return raw.decode()


def _function(source: str, name: str) -> str:
    start = source.index(f"func {name}(")
    end = source.find("\nfunc ", start + 1)
    return source[start : end if end != -1 else None]


def _sets(text: str) -> set[frozenset[str]]:
    return {frozenset(name.strip().strip('"') for name in match.split(",")) for match in DIMENSION_SET.findall(text)}


def declared_dimension_sets(source: str, function: str, metric: str) -> set[frozenset[str]]:
    """The dimension sets of the declaration that lists `metric` among its literal selectors; where the function
    collects selectors in a `selectors` variable (the pod declarations), the sets of its `dimensions` variable."""
    body = _function(source, function)
    assert f'"{metric}"' in body, f"{metric} is not declared in {function}"
    for chunk in body.split("Dimensions:")[1:]:
        dimensions, _, selectors = chunk.partition("MetricNameSelectors:")
        if f'"{metric}"' in selectors.split("}")[0] and dimensions.lstrip().startswith("[][]string"):
            return _sets(dimensions)
    collected = re.findall(r"selectors(?: :=| = append\(selectors,) \[\]string\{(.*?)\}", body, re.DOTALL)
    if not any(f'"{metric}"' in selectors for selectors in collected):
        return set()
    assignments = re.findall(r"^\s*dimensions(?: :=| = append\(dimensions,)(.*)$", body, re.MULTILINE)
    return _sets("\n".join(assignments))


@pytest.mark.parametrize(
    "metric", CONTAINER_INSIGHTS, ids=[f"{m.name}:{','.join(m.dimensions)}" for m in CONTAINER_INSIGHTS]
)
def test_container_insights_metric_is_published_with_its_dimensions(metric: metrics.MetricSource) -> None:
    [function] = re.findall(r"\bget\w+MetricDeclarations\b", metric.source)
    assert frozenset(metric.dimensions) in declared_dimension_sets(_agent_source(), function, metric.name)


def test_the_check_tells_a_pod_set_from_a_neuron_set() -> None:
    """pod_neuroncore_utilization is not published by [ClusterName, Namespace, PodName, ContainerName] (a
    container set): the check reads the declaration's own sets, not the whole function's."""
    sets = declared_dimension_sets(_agent_source(), "getAwsNeuronMetricDeclarations", "pod_neuroncore_utilization")
    assert frozenset({"ClusterName", "Namespace", "Service"}) in sets
    assert frozenset({"ClusterName", "Namespace", "PodName", "ContainerName"}) not in sets
    errors = declared_dimension_sets(
        _agent_source(), "getAwsNeuronMetricDeclarations", "node_neuron_execution_errors_total"
    )
    assert errors == {
        frozenset({"ClusterName"}),
        frozenset({"ClusterName", "UltraServer"}),
        frozenset({"ClusterName", "InstanceId", "NodeName"}),
    }


def test_pod_status_is_not_published_per_namespace() -> None:
    """Container Insights has no [ClusterName, Namespace] set for pod status (only for utilization and network)."""
    sets = declared_dimension_sets(_agent_source(), "getPodMetricDeclarations", "pod_status_pending")
    assert frozenset({"PodName", "Namespace", "ClusterName"}) in sets
    assert frozenset({"Service", "Namespace", "ClusterName"}) in sets
    assert frozenset({"ClusterName", "Namespace"}) not in sets


def test_every_metric_names_its_source() -> None:
    """An AWS page or the agent's source for what AWS publishes; for what Tessera publishes itself (the judge's
    per-track figures), the function that publishes it, which must exist."""
    own = re.compile(r"^published by the rollout judge \((lambda/rollout/\w+\.py), (\w+)\)$")
    for metric in metrics.ALL:
        if metric.namespace == metrics.JUDGED_NAMESPACE:
            match = own.match(metric.source)
            assert match, metric
            module = Path(__file__).resolve().parents[2] / match.group(1)
            assert f"def {match.group(2)}(" in module.read_text(), metric
            continue
        assert metric.source.startswith(("https://docs.aws.amazon.com/", "aws/amazon-cloudwatch-agent@")), metric
    names = [(m.namespace, m.name, m.dimensions) for m in metrics.ALL]
    assert len(names) == len(set(names))


def test_a_query_by_an_unpublished_dimension_set_is_refused() -> None:
    with pytest.raises(ValueError, match="published with"):
        metrics.POD_NEURONCORE_UTILIZATION.dimensions_map(ClusterName="c", Namespace="n", PodName="p")
    assert metrics.REQUEST_COUNT.dimensions_map(LoadBalancer="app/x", TargetGroup="targetgroup/y") == {
        "TargetGroup": "targetgroup/y",
        "LoadBalancer": "app/x",
    }
