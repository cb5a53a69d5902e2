"""An environment whose LLM service declares its serving runtime's metrics, for the tests of what that brings: the
managed Prometheus workspace and collector, KEDA's queue trigger, the judge's access and the dashboards."""

from __future__ import annotations

import yaml

from stacks.config.environment import EnvironmentConfig, config_path_for, parse_config


def metrics_config(**assistant: object) -> EnvironmentConfig:
    """dev with the assistant serving vLLM's metrics on its port and scaling on its queue, plus `assistant` keys."""
    data = yaml.safe_load(config_path_for("dev").read_text())
    [spec] = [service for service in data["services"] if service["name"] == "assistant"]
    spec |= {"metrics": {}, "scaling": {"signal": "waiting_requests_per_pod", "target": 8}} | assistant
    return parse_config(data, source="test")
