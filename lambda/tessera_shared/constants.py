"""Every value that both the Lambda code and the stacks (or the CLI) must agree on, defined once.

It lives on the runtime side because the Lambda asset carries only `lambda/`; the stacks and the CLI
import it from here. Change a value here and both sides change together.
"""

from __future__ import annotations

# -- names of things ---------------------------------------------------------------------------
SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,30}$"
MODEL_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ENVIRONMENT_NAME_PATTERN = r"^[a-z][a-z0-9]{1,11}$"  # stacks are `Tessera-<name>-*`

# -- where model versions live in the model bucket -------------------------------------------------
# One rule, shared by config validation, the catalog, the register rule's event pattern and the key
# parser: a service's versions are folders under models/<service>/, each with its manifest.json.
MODEL_ROOT = "models/"
# The registry's record of each registered version's object versions: `registered/<service>/<version>.json`,
# written once by the register function, read by the model loader in every pod.
REGISTERED_ROOT = "registered/"
MANIFEST_NAME = "manifest.json"


def model_prefix(service: str) -> str:
    return f"{MODEL_ROOT}{service}/"


def parameter_prefix(environment: str) -> str:
    """Every SSM parameter of an environment lives under this path."""
    return f"/tessera/{environment}"


# -- model version states in the registry --------------------------------------------------------
REGISTERED = "REGISTERED"
REJECTED = "REJECTED"
PROMOTED = "PROMOTED"
ROLLED_BACK = "ROLLED_BACK"

# -- events in a version's history ------------------------------------------------------------------
# The registry writes the first three; the rollout engine records the others through
# registry.store.RegistryStore.record_lifecycle_event.
EVENT_REGISTERED = "registered"
EVENT_REJECTED = "rejected"
EVENT_CONFLICT = "conflict"
EVENT_DEPLOYED_CANARY = "deployed-canary"
EVENT_PROMOTED = "promoted"
EVENT_ROLLED_BACK = "rolled-back"
EVENT_ROLLOUT_FAILED = "rollout-failed"
LIFECYCLE_EVENTS = (EVENT_DEPLOYED_CANARY, EVENT_PROMOTED, EVENT_ROLLED_BACK, EVENT_ROLLOUT_FAILED)
# Once one of these is recorded the version has run, and it is never re-registered.
DEPLOYING_EVENTS = (EVENT_DEPLOYED_CANARY, EVENT_PROMOTED)

# -- images kept while they run -----------------------------------------------------------------------
# The rollout adds `<prefix><version>` to the image it deploys; the Artifacts stack's ECR lifecycle rule
# of highest priority matches the prefix and so keeps those images from every lower-priority rule.
PROTECTED_IMAGE_TAG_PREFIX = "tessera-live-"

# -- uploads the register function could not place -------------------------------------------------------
IGNORED_METRIC = "RegistrationIgnored"
IGNORED_RECORD_DAYS = 14

# -- the announcement of a registration on the default event bus ----------------------------------
# The register function puts it; the Rollout stack's auto-start rules match it.
REGISTRATION_EVENT_SOURCE = "tessera.registry"
REGISTRATION_EVENT_DETAIL_TYPE = "Model Version Registered"

# -- Kubernetes: what the rendered objects say and the rollout engine reads or writes --------------
NAMESPACE = "inference"
TRACKS = ("stable", "canary")
SERVICE_LABEL = "tessera.dev/service"
TRACK_LABEL = "tessera.dev/track"


def track_object_name(service: str, track: str) -> str:
    """The name of a track's Deployment (and, for stable, of its autoscaler): `<service>-<track>`."""
    return f"{service}-{track}"


MODEL_VERSION_LABEL = "tessera.dev/model-version"
# On a Deployment (not its pods): `<execution>#<lock epoch>` of the rollout step that last wrote it, so a late write
# of a rollout that lost the lock is visible.
ROLLOUT_WRITER_ANNOTATION = "tessera.dev/written-by-rollout"
POOL_LABEL = "tessera.dev/pool"
ACCELERATOR_LABEL = "tessera.dev/accelerator"
SERVING_CONTAINER = "server"
# The init container that loads and verifies the registered model before the server starts (model_loader/).
MODEL_LOADER_CONTAINER = "model-loader"
# Where a pod spec lists containers: every image in any of them is checked, pinned and admitted.
POD_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# The name the Neuron Helm chart gives its scheduler extension; pods opt in with schedulerName.
NEURON_SCHEDULER_NAME = "my-scheduler"
NEURON_TAINT_KEY = "aws.amazon.com/neuron"
NEURONCORE_RESOURCE = "aws.amazon.com/neuroncore"
NEURON_DEVICE_RESOURCE = "aws.amazon.com/neuron"
NEURON_TAINT_VALUE = "true"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
# NVIDIA: the device plugin's resource, and the taint Tessera's GPU pools carry (only GPU pods tolerate it).
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
# The resources that say which accelerator a pod takes: the placement of a track, with its node selector,
# tolerations and scheduler (the rollout engine moves a track between targets by changing these).
ACCELERATOR_RESOURCES = ("aws.amazon.com/neuron", "aws.amazon.com/neuroncore", GPU_RESOURCE, EFA_RESOURCE)
# The system node group's taint: only controllers that tolerate it (Karpenter, CoreDNS, ...) run there.
CRITICAL_ADDONS_TAINT_KEY = "CriticalAddonsOnly"
SYSTEM_POOL = "system"
GENERAL_POOL = "general"
# The CPU architecture of each kind of pool (Kubernetes' `kubernetes.io/arch` values): the general pool is
# Graviton; there is no arm64 Neuron AMI and Tessera's GPU types are x86_64.
GENERAL_POOL_ARCHITECTURE = "arm64"
ACCELERATOR_POOL_ARCHITECTURE = "amd64"
# x86 system node group for the Neuron scheduler extension (created only when a service needs it).
SCHEDULER_POOL = "system-x86"
# Karpenter: a pod carrying this annotation keeps its node from voluntary disruption (consolidation, drift).
DO_NOT_DISRUPT_ANNOTATION = "karpenter.sh/do-not-disrupt"
# KEDA: the stable track of a service with `scaling` is sized by a ScaledObject named like its Deployment; the
# rollout's floor on stable goes to its spec.minReplicaCount (KEDA owns the HPA and would undo a write there).
KEDA_API_VERSION = "keda.sh/v1alpha1"
SCALED_OBJECTS = "scaledobjects"
# The kinds of the stable track's autoscaler (a service's rollout settings name one).
HPA_KIND = "HorizontalPodAutoscaler"
SCALED_OBJECT_KIND = "ScaledObject"
AUTOSCALER_KINDS = (HPA_KIND, SCALED_OBJECT_KIND)
# Private subnets carry this tag (value: the cluster name); Karpenter's node classes select them by it.
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"
# The Kubernetes group the rollout function's access entry maps its role to; a Role in NAMESPACE grants
# it exactly what the rollout client calls (stacks/rollout/kubernetes_access.py).
ROLLOUT_KUBERNETES_GROUP = "tessera:rollout"
TRACK_OWNER_KUBERNETES_GROUP = "tessera:track-owner"
# Target groups the AWS Load Balancer Controller may register pods into carry this tag (value: the
# cluster name); its IAM policy allows RegisterTargets/DeregisterTargets only on target groups with it.
TARGET_GROUP_OWNER_TAG = "tessera.dev/target-group-of"
# The services' load balancer carries this tag (value: the cluster name), its listener rules SERVICE_LABEL and its
# target groups SERVICE_LABEL and TRACK_LABEL besides: Prepare checks a service's settings point at its own.
LOAD_BALANCER_OWNER_TAG = "tessera.dev/load-balancer-of"

# -- the functions' environment variables, set by the stacks and read by the handlers -------------
ENV_ENVIRONMENT = "ENVIRONMENT"
ENV_EVENT_BUS = "EVENT_BUS_NAME"
ENV_MODEL_BUCKET = "MODEL_BUCKET"
ENV_REGISTRY_TABLE = "REGISTRY_TABLE"
ENV_CATALOG_PARAMETER = "CATALOG_PARAMETER"
ENV_CLUSTER_NAME = "CLUSTER_NAME"
ENV_CLUSTER_ENDPOINT = "CLUSTER_ENDPOINT"
ENV_CLUSTER_CA = "CLUSTER_CA"
ENV_TOPIC_ARN = "TOPIC_ARN"
ENV_SETTINGS_PREFIX = "SETTINGS_PREFIX"
ENV_SETTLE_QUEUE_URL = "SETTLE_QUEUE_URL"
# The track owner's: each service's ECR repository URI, the only source of the images it may apply.
ENV_IMAGE_REPOSITORY_PREFIX = "IMAGE_REPOSITORY_"


def image_repository_variable(service: str) -> str:
    """`IMAGE_REPOSITORY_<SERVICE>` (a Lambda environment variable's name takes no hyphen)."""
    return ENV_IMAGE_REPOSITORY_PREFIX + service.upper().replace("-", "_")


# -- Powertools: log service names and the metric namespace ---------------------------------------
METRICS_NAMESPACE = "Tessera"
REGISTER_FUNCTION_SERVICE = "tessera-registry"
ROLLOUT_FUNCTION_SERVICE = "tessera-rollout"
# The rollout function's timeout: an invocation that started before its execution was stopped may still write
# until this long after.
ROLLOUT_FUNCTION_TIMEOUT_SECONDS = 120
# A stopped execution is quiescent (none of its invocations can still land) this long after it stopped; until
# then its lock stays held (revoked) and nobody takes it over.
QUIESCENCE_SECONDS = ROLLOUT_FUNCTION_TIMEOUT_SECONDS + 60
# How long EventBridge keeps trying to deliver an execution's status change to the safety net.
SAFETY_NET_MAX_EVENT_AGE_SECONDS = 6 * 3600
TRACK_OWNER_FUNCTION_SERVICE = "tessera-track-owner"

# -- how long a rollout may run -------------------------------------------------------------------
# A policy's worst case is bounded in config validation and at every start; the state machine's
# execution timeout covers that bound, and the service lock's lease covers the execution timeout,
# so a valid rollout never outlives its execution and no execution outlives its lock.
MAX_ROLLOUT_SECONDS = 30 * 86400
EXECUTION_TIMEOUT_SECONDS = MAX_ROLLOUT_SECONDS + 86400
LOCK_LEASE_SECONDS = EXECUTION_TIMEOUT_SECONDS + 3600

# -- outcomes of a rollout, in its record and its notification -------------------------------------
RUNNING = "RUNNING"
FAILED = "FAILED"  # infrastructure or input trouble: says nothing about the version, which stays startable
ABORTED = "ABORTED"
TIMED_OUT = "TIMED_OUT"
NEEDS_OPERATOR = "NEEDS_OPERATOR"  # cleanup could not finish: the lock is handed to an operator
