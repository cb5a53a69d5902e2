"""The managed Prometheus collector's scrape configuration, as a pure function of config: one job per service with
`metrics`, each scraping the serving container of that service's pods in the `inference` namespace.

What a job does, in Prometheus' own terms (prometheus.io, "Configuration": kubernetes_sd_config, relabel_config):
- `kubernetes_sd_configs` role `pod`, limited to the namespace, lists a target per declared container port and one
  per container without ports (init containers included); the relabelling keeps the service's pods
  (pod label tessera.dev/service), their serving container and running pods only, so each pod is one target;
- the address is the pod IP and the metrics port (`metrics.port`, or the service's port), whatever port the
  target was discovered with;
- the series get the labels the judge and KEDA select tracks by (runtime_metrics.SERIES_LABELS: namespace, pod,
  service, track), copied from the discovery meta labels, since the runtime's own series carry none of them;
- `metric_relabel_configs` keep only the runtime's series (runtime_metrics `keep`): the rest of the endpoint
  (Python process and HTTP server metrics) is dropped before it is written, so it costs no ingestion.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from stacks.config.services import ServiceSpec
from tessera_shared.constants import NAMESPACE, SERVING_CONTAINER
from tessera_shared.runtime_metrics import SERIES_LABELS, SERVICE_LABEL, runtime_names

JOB_PREFIX = "tessera-"
# The scrape timeout stays Prometheus' default (10 s), which config's shortest interval (10 s) still holds.


def metrics_services(services: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """The services whose runtime metrics the collector scrapes, in config order."""
    return [service for service in services if service.metrics is not None]


def metrics_port(service: ServiceSpec) -> int:
    if service.metrics is None:
        raise ValueError(f"service {service.name} has no metrics endpoint")
    return service.metrics.port or service.port


def scrape_configuration(services: Sequence[ServiceSpec], *, interval_seconds: int) -> dict:
    """The Prometheus configuration (global settings and scrape_configs) of the services with `metrics`."""
    scraped = metrics_services(services)
    if not scraped:
        raise ValueError("no service has metrics: there is nothing to scrape")
    interval = f"{interval_seconds}s"
    return {
        "global": {"scrape_interval": interval},
        "scrape_configs": [_job(service, interval) for service in scraped],
    }


def scrape_configuration_yaml(services: Sequence[ServiceSpec], *, interval_seconds: int) -> str:
    return yaml.safe_dump(scrape_configuration(services, interval_seconds=interval_seconds), sort_keys=False)


def _job(service: ServiceSpec, interval: str) -> dict:
    metrics = service.metrics
    if metrics is None:
        raise ValueError(f"service {service.name} has no metrics endpoint")
    names = runtime_names(metrics.runtime)
    keep = [
        (SERIES_LABELS[SERVICE_LABEL], service.name),
        ("__meta_kubernetes_pod_container_name", SERVING_CONTAINER),
        # A pending pod has no IP yet; a finished one serves nothing.
        ("__meta_kubernetes_pod_phase", "Running"),
    ]
    return {
        "job_name": f"{JOB_PREFIX}{service.name}",
        "scrape_interval": interval,
        "metrics_path": metrics.path,
        "scheme": "http",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
        "relabel_configs": [
            *({"source_labels": [meta], "regex": value, "action": "keep"} for meta, value in keep),
            {
                "source_labels": ["__meta_kubernetes_pod_ip"],
                "regex": "(.+)",
                "target_label": "__address__",
                "replacement": f"$1:{metrics_port(service)}",
                "action": "replace",
            },
            *(
                {"source_labels": [meta], "target_label": label, "action": "replace"}
                for label, meta in SERIES_LABELS.items()
            ),
        ],
        "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": names.keep, "action": "keep"}],
    }
