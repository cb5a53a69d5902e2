"""Names of the dashboards and alarms, derived from environment and service names alone, so that the rollout
settings, the operator CLI and docs/services.md can name them without a look-up. Pure (no aws_cdk)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceAlarmNames:
    five_xx_rate: str
    p99_latency: str
    no_healthy_targets: str
    pods_pending: str
    composite: str  # ALARM when any of the four is; the one that notifies, and the rollout's default watched alarm

    @property
    def metric_alarms(self) -> tuple[str, ...]:
        return (self.five_xx_rate, self.p99_latency, self.no_healthy_targets, self.pods_pending)


@dataclass(frozen=True)
class EnvironmentAlarmNames:
    load_balancer_5xx_rate: str
    neuron_execution_errors: str


def service_alarm_names(environment: str, service: str) -> ServiceAlarmNames:
    prefix = f"tessera-{environment}-{service}"
    return ServiceAlarmNames(
        five_xx_rate=f"{prefix}-5xx-rate",
        p99_latency=f"{prefix}-p99-latency",
        no_healthy_targets=f"{prefix}-no-healthy-targets",
        pods_pending=f"{prefix}-pods-pending",
        composite=prefix,
    )


def environment_alarm_names(environment: str) -> EnvironmentAlarmNames:
    prefix = f"tessera-{environment}"
    return EnvironmentAlarmNames(
        load_balancer_5xx_rate=f"{prefix}-load-balancer-5xx-rate",
        neuron_execution_errors=f"{prefix}-neuron-execution-errors",
    )


def environment_dashboard_name(environment: str) -> str:
    return f"tessera-{environment}"


def service_dashboard_name(environment: str, service: str) -> str:
    return f"tessera-{environment}-{service}"


def dashboard_url(region: str, name: str) -> str:
    return f"https://console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
