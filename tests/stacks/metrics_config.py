"""An environment whose LLM service declares its serving runtime's metrics, for the tests of what that brings: the
managed Prometheus workspace and collector, KEDA's queue trigger, the judge's access and the dashboards."""

from __future__ import annotations

import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config
from stacks.config.observability import RUNTIME_SIGNALS


def metrics_config(**assistant: object) -> EnvironmentConfig:
    """dev with the assistant serving vLLM's metrics on its port and scaling on its queue, plus `assistant` keys."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    [spec] = [service for service in data["services"] if service["name"] == "assistant"]
    spec |= {"metrics": {}, "scaling": {"signal": "waiting_requests_per_pod", "target": 8}} | assistant
    return parse_config(data, source="test")


def no_metrics_config() -> EnvironmentConfig:
    """dev with no service declaring metrics (and none scaling on the runtime's signals): what an environment
    without an LLM runtime synthesizes."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    for service in data["services"]:
        service.pop("metrics", None)
        if service.get("scaling", {}).get("signal") in RUNTIME_SIGNALS:
            service["scaling"] = {"signal": "requests_per_target", "target": 60}
    return parse_config(data, source="test")
