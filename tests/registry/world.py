"""A moto-backed AWS world for the registry tests: the model bucket, the registry table, the
services' ECR repositories with scanned images, and the catalog parameter, as the stacks create them."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests

from registry.catalog import Catalog
from registry.registrar import Registrar
from registry.store import RegistryStore
from tests.fake_aws import create_registry_table

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = f"tessera-dev-models-{ACCOUNT}-{REGION}"
TABLE = "tessera-dev-model-registry"
CATALOG_PARAMETER = "/tessera/dev/registry/catalog"
REGISTRATION_BUS = "tessera-dev-registrations"
SCAN_RESULTS_API = "http://motoapi.amazonaws.com/moto-api/static/ecr/scan-finding-results"


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def image_index(tag: str, architectures: tuple[str, ...]) -> str:
    """A multi-platform image (what `docker buildx` pushes): an OCI index naming one manifest per platform,
    plus the attestation manifest buildx adds (platform unknown/unknown), which is no platform at all."""
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": "sha256:" + hashlib.sha256(f"{tag} for {arch}".encode()).hexdigest(),
            "size": 1,
            "platform": {"architecture": arch, "os": "linux"},
        }
        for arch in architectures
    ]
    attestation = {"architecture": "unknown", "os": "unknown"}
    entries.append({"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1, "platform": attestation})
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})


def image_manifest(tag: str) -> str:
    """A distinct (fake) single-platform image per tag: ECR identifies images by digest (moto derives it from
    the layers). Its architecture is in its config blob, which only ECR's layer download gives."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "digest": "sha256:" + hashlib.sha256(tag.encode()).hexdigest(),
                "size": 1,
                "mediaType": "application/vnd.docker.container.image.v1+json",
            },
            "layers": [
                {
                    "digest": "sha256:" + hashlib.sha256(f"layer of {tag}".encode()).hexdigest(),
                    "size": 1,
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                }
            ],
        }
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@dataclass
class World:
    catalog: Catalog
    s3: Any = field(default_factory=lambda: boto3.client("s3", region_name=REGION))
    ecr: Any = field(default_factory=lambda: boto3.client("ecr", region_name=REGION))
    dynamodb: Any = field(default_factory=lambda: boto3.client("dynamodb", region_name=REGION))
    ssm: Any = field(default_factory=lambda: boto3.client("ssm", region_name=REGION))

    def build(self) -> World:
        self.s3.create_bucket(Bucket=BUCKET)
        # As the Artifacts stack creates it: the registry records the object versions it checked.
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        create_registry_table(self.dynamodb, TABLE)
        boto3.client("events", region_name=REGION).create_event_bus(Name=REGISTRATION_BUS)
        for service in self.catalog.services.values():
            self.ecr.create_repository(repositoryName=service.repository)
        self.ssm.put_parameter(Name=CATALOG_PARAMETER, Value=self.catalog.to_json(), Type="String")
        for name, value in {
            "artifacts/model-bucket-name": BUCKET,
            "artifacts/registry-table-name": TABLE,
        }.items():
            self.ssm.put_parameter(Name=f"/tessera/dev/{name}", Value=value, Type="String")
        return self

    def push_image(
        self,
        repository: str,
        tag: str,
        *,
        findings: dict[str, int] | None = None,
        status: str = "COMPLETE",
        architectures: tuple[str, ...] | None = None,
    ) -> None:
        """A multi-platform image with a finished scan, built for the architecture of the repository's service's
        pools unless `architectures` says otherwise; `findings` are severity counts (moto's default scan finds one
        HIGH)."""
        if architectures is None:
            [service] = [s for s in self.catalog.services.values() if s.repository == repository]
            architectures = (service.targets[0].architecture,)
        index = image_index(tag, architectures)
        digest = "sha256:" + hashlib.sha256(index.encode()).hexdigest()  # moto would make one up for an index
        self.ecr.put_image(repositoryName=repository, imageManifest=index, imageTag=tag, imageDigest=digest)
        self.ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})
        self.set_scan(repository, tag, findings=findings, status=status)

    def set_scan(self, repository: str, tag: str, *, findings: dict[str, int] | None, status: str = "COMPLETE") -> None:
        """What ECR's scan of the image reports from now on (through moto's configuration API)."""
        result = {
            "imageScanFindings": {"findings": [], "findingSeverityCounts": findings or {}},
            "registryId": ACCOUNT,
            "repositoryName": repository,
            "imageId": {"imageTag": tag},
            "imageScanStatus": {"status": status, "description": "set by the test"},
        }
        requests.post(SCAN_RESULTS_API, json={"results": [result], "region": REGION}, timeout=5)

    def upload(self, manifest: dict, artifacts: dict[str, bytes], *, checksums: bool = True) -> str:
        folder = f"models/{manifest['service']}/{manifest['version']}/"
        for path, data in artifacts.items():
            extra = {"ChecksumAlgorithm": "SHA256"} if checksums else {}
            self.s3.put_object(Bucket=BUCKET, Key=folder + path, Body=data, **extra)
        key = folder + "manifest.json"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode(), ChecksumAlgorithm="SHA256")
        return key

    def store(self) -> RegistryStore:
        return RegistryStore(self.dynamodb, TABLE)

    def registrar(self, store: RegistryStore | None = None) -> Registrar:
        return Registrar(s3=self.s3, ecr=self.ecr, store=store or self.store(), catalog=self.catalog, bucket=BUCKET)


def announcement_queue() -> tuple[Any, str]:
    """An SQS queue that receives every announcement on the registration bus, as an auto-start rule would:
    the SQS client and the queue's URL."""
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="announcements")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    pattern = json.dumps({"source": ["tessera.registry"]})
    events.put_rule(Name="registrations", EventBusName=REGISTRATION_BUS, EventPattern=pattern)
    events.put_targets(Rule="registrations", EventBusName=REGISTRATION_BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return sqs, queue


ASSISTANT_TAG = "vllm-0.16.0-neuronx-sdk2.31.1"
WEIGHTS = b"weights of the assistant model" * 100
TOKENIZER = b'{"vocab": ["a", "b"]}'


def assistant_manifest(version: str = "2026-11-20", **changes: Any) -> dict:
    """A manifest that fits the dev assistant service (trn1, 2 NeuronCores, SDK 2.31.1)."""
    manifest = {
        "schema_version": 1,
        "service": "assistant",
        "model": "assistant-vlm",
        "version": version,
        "image": {"repository": "tessera/dev/assistant", "tag": ASSISTANT_TAG},
        "compile_target": {
            "accelerator": "trainium",
            "instance_family": "trn1",
            "neuron_cores": 2,
            "tensor_parallel_degree": 2,
            "batch_size": 4,
            "sequence_length": 8192,
            "neuron_sdk": "2.31.1",
        },
        "artifacts": [
            {"path": "model.neff", "size_bytes": len(WEIGHTS), "sha256": sha256_hex(WEIGHTS)},
            {"path": "tokenizer.json", "size_bytes": len(TOKENIZER), "sha256": sha256_hex(TOKENIZER)},
        ],
        "metadata": {"training_run": "tr-42", "eval": {"vqa_accuracy": 0.81}},
    }
    for key, value in changes.items():
        if key in manifest["compile_target"]:
            manifest["compile_target"][key] = value
        else:
            manifest[key] = value
    return manifest


ASSISTANT_ARTIFACTS = {"model.neff": WEIGHTS, "tokenizer.json": TOKENIZER}


@dataclass
class LambdaContextDouble:
    """The attributes Powertools reads from the Lambda context."""

    function_name: str = "tessera-dev-register"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:tessera-dev-register"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"


def object_created_event(key: str, bucket: str = BUCKET) -> dict:
    """The event S3 sends to EventBridge for a new object, in the shape AWS documents."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": "2026-11-20T18:43:48Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "00617F08299329D189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }
