"""What each pinned Helm chart installs that a later object of the deploy needs: its CRDs, and whether they
sit in the chart's `crds/` folder (Helm creates those on first install only and never upgrades or deletes
them) or among its templates (created, upgraded and deleted with the release). The rest of a chart (its
Deployments, RBAC, webhooks) is not rendered: charts cannot be fetched here, and no Tessera object depends
on it through the API server.

Sources (chart layout at the pinned versions):
- karpenter-crd and karpenter 1.14.1 (aws/karpenter-provider-aws, charts/karpenter-crd/templates/ and
  charts/karpenter/crds/): NodePool, NodeClaim, NodeOverlay (karpenter.sh), EC2NodeClass (karpenter.k8s.aws).
- keda 2.20.2 (kedacore/charts, keda/templates/crds/, rendered while `crds.install` is true, its default):
  ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication, CloudEventSource,
  ClusterCloudEventSource (keda.sh, eventing.keda.sh).
- aws-load-balancer-controller 3.5.0 (kubernetes-sigs/aws-load-balancer-controller,
  helm/aws-load-balancer-controller/crds/crds.yaml): TargetGroupBinding, IngressClassParams (elbv2.k8s.aws).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.deploy.cluster_double import Crd

KARPENTER_CRDS = (
    Crd("karpenter.sh", "NodePool", "nodepools", namespaced=False),
    Crd("karpenter.sh", "NodeClaim", "nodeclaims", namespaced=False),
    Crd("karpenter.sh", "NodeOverlay", "nodeoverlays", namespaced=False),
    Crd("karpenter.k8s.aws", "EC2NodeClass", "ec2nodeclasses", namespaced=False),
)
KEDA_CRDS = (
    Crd("keda.sh", "ScaledObject", "scaledobjects", namespaced=True),
    Crd("keda.sh", "ScaledJob", "scaledjobs", namespaced=True),
    Crd("keda.sh", "TriggerAuthentication", "triggerauthentications", namespaced=True),
    Crd("keda.sh", "ClusterTriggerAuthentication", "clustertriggerauthentications", namespaced=False),
    Crd("eventing.keda.sh", "CloudEventSource", "cloudeventsources", namespaced=True),
    Crd("eventing.keda.sh", "ClusterCloudEventSource", "clustercloudeventsources", namespaced=False),
)
LOAD_BALANCER_CONTROLLER_CRDS = (
    Crd("elbv2.k8s.aws", "TargetGroupBinding", "targetgroupbindings", namespaced=True),
    Crd("elbv2.k8s.aws", "IngressClassParams", "ingressclassparams", namespaced=False),
)


@dataclass(frozen=True)
class ChartContents:
    crds_folder: tuple[Crd, ...] = field(default=())  # `crds/`: created if absent, never upgraded or deleted
    templated_crds: tuple[Crd, ...] = field(default=())  # templates: live and die with the release


CHARTS: dict[str, ChartContents] = {
    "karpenter-crd": ChartContents(templated_crds=KARPENTER_CRDS),
    "karpenter": ChartContents(crds_folder=KARPENTER_CRDS),
    "keda": ChartContents(templated_crds=KEDA_CRDS),
    "aws-load-balancer-controller": ChartContents(crds_folder=LOAD_BALANCER_CONTROLLER_CRDS),
    "metrics-server": ChartContents(),
    "neuron-helm-chart": ChartContents(),
    "nvidia-device-plugin": ChartContents(),
    "aws-efa-k8s-device-plugin": ChartContents(),
}
