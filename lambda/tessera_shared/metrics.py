"""Every CloudWatch metric Tessera reads (dashboards, alarms, KEDA triggers, the canary judge): its
namespace, name, the dimension sets we query it by, and where that is documented.

A metric only lands here with a source that says it exists with those dimensions: the AWS
documentation page, or the CloudWatch agent's EMF declarations
(aws/amazon-cloudwatch-agent v1.300071.0, `translator/translate/otel/exporter/awsemf/kubernetes.go`),
which decide which dimension sets Container Insights publishes. CloudWatch matches dimensions
exactly: a query with a set the agent does not publish returns nothing, silently.

What the Container Insights dimensions hold for Tessera's objects:
- `Service` is the Kubernetes Service that selects the pod; Tessera has one per track
  (`<service>-stable`, `<service>-canary`), so it tells the tracks apart.
- `PodName` is the owning workload's name: for a Deployment's pod the agent resolves the ReplicaSet
  to its Deployment (amazon-contributing/opentelemetry-collector-contrib,
  `receiver/awscontainerinsightreceiver/internal/stores/podstore.go`, `addPodOwnersAndPodName`), so
  it is `<service>-<track>` too. A Pending pod has no IP and so no Service (Endpoints list only pods
  with an address); its status metrics are reachable by PodName only.
"""

from __future__ import annotations

from dataclasses import dataclass

ALB_NAMESPACE = "AWS/ApplicationELB"
CONTAINER_INSIGHTS_NAMESPACE = "ContainerInsights"
STATES_NAMESPACE = "AWS/States"

ALB_DOCS = "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html"
CONTAINER_INSIGHTS_DOCS = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Container-Insights-metrics-enhanced-EKS.html"
)
AGENT_SOURCE = "aws/amazon-cloudwatch-agent@v1.300071.0:translator/translate/otel/exporter/awsemf/kubernetes.go"
STATES_DOCS = "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cw-metrics.html"

# Dimension names, as published.
TARGET_GROUP = "TargetGroup"
LOAD_BALANCER = "LoadBalancer"
CLUSTER_NAME = "ClusterName"
NAMESPACE = "Namespace"
SERVICE = "Service"
POD_NAME = "PodName"
NODE_NAME = "NodeName"
INSTANCE_ID = "InstanceId"
STATE_MACHINE_ARN = "StateMachineArn"


@dataclass(frozen=True)
class MetricSource:
    namespace: str
    name: str
    dimensions: tuple[str, ...]  # the one published dimension set Tessera queries it by
    unit: str
    source: str  # where the name and this dimension set are documented

    def dimensions_map(self, **values: str) -> dict[str, str]:
        """The metric's dimensions with values, refusing a set CloudWatch would not match."""
        if set(values) != set(self.dimensions):
            raise ValueError(f"{self.name} is published with {self.dimensions}, not {tuple(sorted(values))}")
        return {name: values[name] for name in self.dimensions}


def _alb(name: str, unit: str, dimensions: tuple[str, ...] = (TARGET_GROUP, LOAD_BALANCER)) -> MetricSource:
    return MetricSource(ALB_NAMESPACE, name, dimensions, unit, f"{ALB_DOCS} (Target group metrics)")


# -- Application Load Balancer, per target group (one per service track) ----------------------------
REQUEST_COUNT = _alb("RequestCount", "Count")
TARGET_5XX = _alb("HTTPCode_Target_5XX_Count", "Count")
# The target reset, refused or timed out the connection: the client gets a 502/504 from the load balancer.
TARGET_CONNECTION_ERRORS = _alb("TargetConnectionErrorCount", "Count")
TARGET_RESPONSE_TIME = _alb("TargetResponseTime", "Seconds")
# Unlike the traffic metrics, reported whenever health checks are enabled (they are on every Tessera target group).
HEALTHY_HOSTS = _alb("HealthyHostCount", "Count")

# -- Application Load Balancer, whole load balancer (all services share it) -------------------------
LOAD_BALANCER_REQUESTS = MetricSource(
    ALB_NAMESPACE, "RequestCount", (LOAD_BALANCER,), "Count", f"{ALB_DOCS} (Load balancer metrics)"
)
# The load balancer's own 5xx (502/503/504) exist only per load balancer, never per target group.
LOAD_BALANCER_5XX = MetricSource(
    ALB_NAMESPACE, "HTTPCode_ELB_5XX_Count", (LOAD_BALANCER,), "Count", f"{ALB_DOCS} (Load balancer metrics)"
)

# -- Container Insights with enhanced observability (the CloudWatch Observability add-on) -----------
_NEURON = f"{CONTAINER_INSIGHTS_DOCS} (AWS Neuron metrics); {AGENT_SOURCE} getAwsNeuronMetricDeclarations"
_POD = f"{CONTAINER_INSIGHTS_DOCS}; {AGENT_SOURCE} getPodMetricDeclarations (enhanced)"
# Average over every NeuronCore of the track's pods, in percent.
POD_NEURONCORE_UTILIZATION = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "pod_neuroncore_utilization", (CLUSTER_NAME, NAMESPACE, SERVICE), "Percent", _NEURON
)
# Neuron execution errors and latency are published per node only: no pod, service or pool dimension.
NODE_NEURON_EXECUTION_ERRORS = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "node_neuron_execution_errors_total", (CLUSTER_NAME,), "Count", _NEURON
)
NODE_NEURON_EXECUTION_ERRORS_PER_NODE = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE,
    "node_neuron_execution_errors_total",
    (CLUSTER_NAME, INSTANCE_ID, NODE_NAME),
    "Count",
    _NEURON,
)
NODE_NEURONCORE_UTILIZATION_PER_NODE = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE,
    "node_neuroncore_utilization",
    (CLUSTER_NAME, INSTANCE_ID, NODE_NAME),
    "Percent",
    _NEURON,
)
POD_STATUS_PENDING = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "pod_status_pending", (POD_NAME, NAMESPACE, CLUSTER_NAME), "Count", _POD
)
POD_STATUS_PENDING_CLUSTER = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "pod_status_pending", (CLUSTER_NAME,), "Count", _POD
)
POD_RESTARTS = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE,
    "pod_number_of_container_restarts",
    (POD_NAME, NAMESPACE, CLUSTER_NAME),
    "Count",
    _POD,
)
# Read from the agent source only; the AWS metrics page was not checked for these two.
_DEPLOYMENT = f"{AGENT_SOURCE} getDeploymentMetricDeclarations (enhanced)"
REPLICAS_DESIRED = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "replicas_desired", (POD_NAME, NAMESPACE, CLUSTER_NAME), "Count", _DEPLOYMENT
)
REPLICAS_READY = MetricSource(
    CONTAINER_INSIGHTS_NAMESPACE, "replicas_ready", (POD_NAME, NAMESPACE, CLUSTER_NAME), "Count", _DEPLOYMENT
)

# -- Step Functions, the rollout state machine ---------------------------------------------------------
EXECUTIONS_STARTED = MetricSource(STATES_NAMESPACE, "ExecutionsStarted", (STATE_MACHINE_ARN,), "Count", STATES_DOCS)
EXECUTIONS_ENDED = tuple(
    MetricSource(STATES_NAMESPACE, name, (STATE_MACHINE_ARN,), "Count", STATES_DOCS)
    for name in ("ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsAborted", "ExecutionsTimedOut")
)

# -- What the canary judge measured on the serving runtime, per track ----------------------------------
# The judge publishes the figures it judged each analysis interval (rollout.runtime_figures), so a service's
# dashboard shows them beside the load balancer's; they exist only while a rollout is judging.
JUDGED_NAMESPACE = "Tessera/Rollouts"
TRACK = "Track"
_JUDGED = "published by the rollout judge (lambda/rollout/runtime_figures.py, publish_judged_figures)"


def _judged(name: str, unit: str) -> MetricSource:
    return MetricSource(JUDGED_NAMESPACE, name, (SERVICE, TRACK), unit, _JUDGED)


JUDGED_TTFT_P50 = _judged("TimeToFirstTokenP50", "Seconds")
JUDGED_TTFT_P99 = _judged("TimeToFirstTokenP99", "Seconds")
JUDGED_TPOT_P99 = _judged("TimePerOutputTokenP99", "Seconds")
JUDGED_E2E_P99 = _judged("EndToEndLatencyP99", "Seconds")
JUDGED_RUNTIME_ERROR_RATE = _judged("RuntimeErrorRatePercent", "Percent")
JUDGED_TOKENS_PER_SECOND_PER_POD = _judged("OutputTokensPerSecondPerPod", "Count/Second")
JUDGED_COST_PER_MILLION_OUTPUT_TOKENS = _judged("CostPerMillionOutputTokens", "None")
JUDGED = (
    JUDGED_TTFT_P50,
    JUDGED_TTFT_P99,
    JUDGED_TPOT_P99,
    JUDGED_E2E_P99,
    JUDGED_RUNTIME_ERROR_RATE,
    JUDGED_TOKENS_PER_SECOND_PER_POD,
    JUDGED_COST_PER_MILLION_OUTPUT_TOKENS,
)

ALL = (
    REQUEST_COUNT,
    TARGET_5XX,
    TARGET_CONNECTION_ERRORS,
    TARGET_RESPONSE_TIME,
    HEALTHY_HOSTS,
    LOAD_BALANCER_REQUESTS,
    LOAD_BALANCER_5XX,
    POD_NEURONCORE_UTILIZATION,
    NODE_NEURON_EXECUTION_ERRORS,
    NODE_NEURON_EXECUTION_ERRORS_PER_NODE,
    NODE_NEURONCORE_UTILIZATION_PER_NODE,
    POD_STATUS_PENDING,
    POD_STATUS_PENDING_CLUSTER,
    POD_RESTARTS,
    REPLICAS_DESIRED,
    REPLICAS_READY,
    EXECUTIONS_STARTED,
    *EXECUTIONS_ENDED,
    *JUDGED,
)
