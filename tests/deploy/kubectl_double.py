"""KubectlProviderDouble: a TEST DOUBLE of the function behind CDK's `Custom::AWSCDK-EKS-KubernetesResource`
and `Custom::AWSCDK-EKS-HelmChart` (aws-cdk-lib aws_eks_v2, the kubectl provider's `apply` and `helm`
handlers), writing into the ClusterDouble instead of running kubectl and helm.

What it follows of the real handlers (read in the synthesized asset, aws-cdk-lib 2.275):
- a manifest's `Manifest` is one JSON string (a list of objects); `Overwrite` and `PruneLabel` arrive as
  strings. Create: `kubectl apply` when Overwrite is "true", else `kubectl create` (an existing object
  fails). Update: `kubectl apply`, and with a prune label, objects carrying it that the new manifest no
  longer names are deleted. Delete: `kubectl delete`, whose errors are only logged;
- a chart: `helm upgrade --install`, with `--create-namespace` when CreateNamespace is set; otherwise the
  release's namespace must exist. `Values` is a JSON string. CRDs in the chart's `crds/` are created when
  absent and never deleted; templated CRDs come and go with the release (tests/deploy/charts.py). The
  handler reads `SkipCrds` but never passes it to helm, so it is ignored here too. Delete: `helm uninstall`.
"""

from __future__ import annotations

import json

from tests.deploy.charts import CHARTS
from tests.deploy.cloudformation_double import ResourceRequest, ResourceResult
from tests.deploy.cluster_double import ClusterDouble
from tests.rollout.kube_double import AdmissionRefused

MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"
HELM_TYPE = "Custom::AWSCDK-EKS-HelmChart"


class KubectlProviderDouble:
    def __init__(self, cluster: ClusterDouble) -> None:
        self.cluster = cluster
        self.releases: dict[tuple[str, str], str] = {}  # (namespace, release) -> chart

    def manifest(self, request: ResourceRequest) -> ResourceResult:
        props = request.properties
        objects = json.loads(props["Manifest"])
        if request.request_type == "Delete":
            for obj in objects:
                self.cluster.delete(obj)  # kubectl's errors on delete are logged, not raised
            return ResourceResult()
        try:
            if request.request_type == "Create" and props.get("Overwrite", "false").lower() != "true":
                for obj in objects:
                    self.cluster.create(obj)
            else:
                for obj in objects:
                    self.cluster.apply(obj)
        except AdmissionRefused as refused:
            raise RuntimeError(f"kubectl: Error from server ({refused.code}): {refused.message}") from refused
        if request.request_type == "Update" and props.get("PruneLabel"):
            self._prune(props["PruneLabel"], objects)
        return ResourceResult(physical_id=request.physical_id or f"{request.stack}/{request.logical_id}")

    def helm_chart(self, request: ResourceRequest) -> ResourceResult:
        props = request.properties
        release, namespace = props["Release"], props.get("Namespace", "default")
        contents = CHARTS[props["Chart"]]
        if request.request_type == "Delete":
            self.releases.pop((namespace, release), None)
            for crd in contents.templated_crds:
                self.cluster.remove_crd(crd)
            return ResourceResult()
        json.loads(props.get("Values", "{}"))  # the handler writes them out with json.loads
        if not self.cluster.has_namespace(namespace):
            if props.get("CreateNamespace", "false").lower() != "true":
                raise RuntimeError(f'helm: create: failed to create: namespaces "{namespace}" not found')
            self.cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for crd in (*contents.crds_folder, *contents.templated_crds):
            if not self.cluster.serves(crd.group, crd.kind):
                self.cluster.install_crd(crd)
        self.releases[(namespace, release)] = props["Chart"]
        return ResourceResult(physical_id=request.physical_id or f"{namespace}/{release}")

    def _prune(self, label: str, kept: list[dict]) -> None:
        names = {(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")) for obj in kept}
        for obj in self.cluster.objects():
            labels = obj["metadata"].get("labels") or {}
            if (
                label in labels
                and (obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")) not in names
            ):
                self.cluster.delete(obj)
