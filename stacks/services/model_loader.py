"""The model loader in every model pod: an init container that runs model_loader/load_model.py before the serving
container starts, and the ConfigMap that carries the script.

The script runs in the service's own serving image (by the same digest the serving container runs), so no other
image has to be pulled, pinned or admitted, and `cdk deploy` alone ships it; the image contract (the table in
kubernetes_objects.py) asks for Python 3.9+ and boto3. Its connections and range size are the loader's defaults.
"""

from __future__ import annotations

from pathlib import Path

from tessera_shared.constants import MODEL_LOADER_CONTAINER, NAMESPACE

SCRIPT = Path(__file__).resolve().parents[2] / "model_loader" / "load_model.py"
CONFIG_MAP = "tessera-model-loader"
MOUNT = "/opt/tessera"
VOLUME = "model-loader"
# What the download needs: a few connections' read buffers and the hashing pass; no accelerator.
RESOURCES = {"cpu": "1", "memory": "512Mi"}


def loader_config_map() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "tessera"}},
        "data": {SCRIPT.name: SCRIPT.read_text()},
    }


def loader_volume() -> dict:
    return {"name": VOLUME, "configMap": {"name": CONFIG_MAP, "defaultMode": 0o444}}


def loader_container(*, image: str, env: list[dict], cache_mount: dict, security_context: dict) -> dict:
    return {
        "name": MODEL_LOADER_CONTAINER,
        "image": image,
        "command": ["python3", f"{MOUNT}/{SCRIPT.name}"],
        # S3's interface endpoint answers the regional names only, and in us-east-1 the SDK would use the global one.
        "env": [*env, {"name": "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT", "value": "regional"}],
        "resources": {"requests": dict(RESOURCES), "limits": dict(RESOURCES)},
        "securityContext": security_context,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            cache_mount,
            {"name": VOLUME, "mountPath": MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }
