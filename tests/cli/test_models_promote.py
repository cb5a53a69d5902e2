"""`tessera models promote` end to end on moto with two environments' resources (dev as the registry world builds
it, prod beside it): the same bytes and checksums land in prod, prod's own registration registers them, prod's
registry records where they came from, and each refusal has its exit code and touches nothing in prod."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from registry.catalog import Catalog
from registry.registered_record import record_key
from registry.registrar import Registrar
from registry.store import RegistryStore
from stacks.config.environment import config_path_for, load_config
from stacks.registration.catalog import build_catalog
from tessera_cli.errors import EXIT_NOT_FOUND, EXIT_OK, EXIT_REJECTED, EXIT_USAGE
from tessera_cli.main import main
from tests.fake_aws import create_registry_table
from tests.registry.world import ASSISTANT_ARTIFACTS, ASSISTANT_TAG, REGION, World, assistant_manifest

VERSION = "2026-11-20"
PROD_BUCKET = "tessera-prod-models-123456789012-us-east-1"
PROD_TABLE = "tessera-prod-model-registry"


@dataclass
class Prod:
    """The prod environment's registry resources, as its stacks create them, in the same moto account."""

    catalog: Catalog
    s3: Any
    store: RegistryStore

    def registrar(self) -> Registrar:
        ecr = boto3.client("ecr", region_name=REGION)
        return Registrar(s3=self.s3, ecr=ecr, store=self.store, catalog=self.catalog, bucket=PROD_BUCKET)

    def objects(self) -> dict[str, bytes]:
        listed = self.s3.list_objects_v2(Bucket=PROD_BUCKET).get("Contents", [])
        return {o["Key"]: self.s3.get_object(Bucket=PROD_BUCKET, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def two(world: World) -> tuple[World, Prod]:
    catalog = build_catalog(load_config(config_path_for("prod")))
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=PROD_BUCKET)
    s3.put_bucket_versioning(Bucket=PROD_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    create_registry_table(dynamodb, PROD_TABLE)
    ssm = boto3.client("ssm", region_name=REGION)
    for name, value in {
        "artifacts/model-bucket-name": PROD_BUCKET,
        "artifacts/registry-table-name": PROD_TABLE,
        "registry/catalog": catalog.to_json(),
    }.items():
        ssm.put_parameter(Name=f"/tessera/prod/{name}", Value=value, Type="String")
    for service in catalog.services.values():
        boto3.client("ecr", region_name=REGION).create_repository(repositoryName=service.repository)
    prod_world = World(catalog=catalog)
    # The serving image, replicated to prod's repository: the same index, so the same digest.
    prod_world.push_image("tessera/prod/assistant", ASSISTANT_TAG)
    world.upload(assistant_manifest(VERSION), ASSISTANT_ARTIFACTS)
    assert world.registrar().register("assistant", VERSION).state == "REGISTERED"
    return world, Prod(catalog, s3, RegistryStore(dynamodb, PROD_TABLE))


def promoted_in_dev(world: World) -> None:
    world.store().record_lifecycle_event("assistant", VERSION, "promoted", {"execution": "e1"}, key="e1#promoted")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The exit code, stdout, and what the command said (its error is on stdout with --json, else on stderr)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err + captured.out


PROMOTE = ("--json", "models", "promote", "assistant", VERSION, "--from", "dev", "--to", "prod", "--no-wait")


def test_a_promoted_version_reaches_prod_byte_for_byte_registers_there_and_records_where_it_came_from(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, prod = two
    promoted_in_dev(dev)
    code, out, err = run(capsys, *PROMOTE)
    assert code == EXIT_OK, err
    assert json.loads(out)["outcome"] == "UPLOADED"

    folder = f"models/assistant/{VERSION}/"
    copied = prod.objects()
    for path, data in ASSISTANT_ARTIFACTS.items():
        assert copied[folder + path] == data  # the same bytes
        head = prod.s3.head_object(Bucket=PROD_BUCKET, Key=folder + path, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"]  # S3 verified the checksum the upload sent
    manifest = json.loads(copied[folder + "manifest.json"])
    dev_manifest = {entry["path"]: entry["sha256"] for entry in manifest["artifacts"]}
    assert dev_manifest == {path: hashlib.sha256(data).hexdigest() for path, data in ASSISTANT_ARTIFACTS.items()}
    assert manifest["image"] == {"repository": "tessera/prod/assistant", "tag": ASSISTANT_TAG}

    # Prod's own registration (what its register function runs on the manifest's upload event).
    outcome = prod.registrar().register("assistant", VERSION)
    assert outcome.state == "REGISTERED", outcome.reasons
    source = dev.store().get_version("assistant", VERSION)
    assert source is not None
    provenance = manifest["promoted_from"]
    assert provenance["environment"] == "dev"
    assert provenance["manifest_sha256"] == source.digest
    assert provenance["image_digest"] == source.image_digest == outcome.image_digest
    assert provenance["state"] == "PROMOTED"
    registered = [e for e in prod.store.history("assistant", VERSION) if e["kind"] == "registered"]
    assert registered[-1]["promoted_from"] == provenance
    record = json.loads(prod.objects()[record_key("assistant", VERSION)])
    assert record["promoted_from"] == provenance
    assert [a["sha256"] for a in record["artifacts"]] == [e["sha256"] for e in manifest["artifacts"]]


def test_a_version_not_promoted_in_the_source_is_refused_unless_allowed(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str]
) -> None:
    _, prod = two
    code, _, err = run(capsys, *PROMOTE)
    assert code == EXIT_REJECTED
    assert "is REGISTERED in dev, not PROMOTED" in err
    assert prod.objects() == {}

    code, out, err = run(capsys, *PROMOTE, "--allow-unpromoted")
    assert code == EXIT_OK, err
    assert json.loads(out)["manifest"]["promoted_from"]["state"] == "REGISTERED"


def test_refusals_name_the_problem_with_their_exit_code_and_write_nothing(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, prod = two
    promoted_in_dev(dev)
    cases = [
        (("--json", "models", "promote", "assistant", "2099-01-01", "--from", "dev", "--to", "prod"), EXIT_NOT_FOUND),
        (("--json", "models", "promote", "assistant", VERSION, "--from", "dev", "--to", "dev"), EXIT_USAGE),
        (("--json", "models", "promote", "assistant", "../x", "--from", "dev", "--to", "prod"), EXIT_USAGE),
    ]
    for argv, expected in cases:
        code, _, err = run(capsys, *argv)
        assert code == expected, (argv, err)
        assert "Traceback" not in err
    assert prod.objects() == {}


def test_an_artifact_changed_in_the_source_bucket_after_registration_is_caught_before_prod_is_touched(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone overwrote the registered object version's bytes (here: the record names a version whose content
    differs, as after a bucket restore): the checksum check stops the promotion."""
    dev, prod = two
    promoted_in_dev(dev)
    key = record_key("assistant", VERSION)
    bucket = dev.s3.list_buckets()["Buckets"]
    dev_bucket = next(b["Name"] for b in bucket if b["Name"].startswith("tessera-dev-models"))
    record = json.loads(dev.s3.get_object(Bucket=dev_bucket, Key=key)["Body"].read())
    tampered = dev.s3.put_object(Bucket=dev_bucket, Key=f"models/assistant/{VERSION}/model.neff", Body=b"not the model")
    record["artifacts"][0]["version_id"] = tampered["VersionId"]
    dev.s3.put_object(Bucket=dev_bucket, Key=key, Body=json.dumps(record).encode())

    code, _, err = run(capsys, *PROMOTE)
    assert code == EXIT_REJECTED
    assert "model.neff" in err
    assert "is not the registered" in err
    assert prod.objects() == {}


def test_an_image_missing_from_the_target_is_refused_before_any_copy(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, prod = two
    promoted_in_dev(dev)
    ecr = boto3.client("ecr", region_name=REGION)
    ecr.batch_delete_image(repositoryName="tessera/prod/assistant", imageIds=[{"imageTag": ASSISTANT_TAG}])
    code, _, err = run(capsys, *PROMOTE)
    assert code == EXIT_REJECTED
    assert "is not in prod's registry: push or replicate the image" in err
    assert prod.objects() == {}


def test_each_environment_is_reached_with_its_own_profile(
    two: tuple[World, Prod], capsys: pytest.CaptureFixture[str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two accounts: the source is read with one named profile, the target written with another (moto serves both
    from one backend, so the test proves the profiles are taken and used, not the account boundary)."""
    dev, prod = two
    promoted_in_dev(dev)
    config = tmp_path / "config"
    config.write_text(
        "[profile dev-account]\naws_access_key_id = AKIDDEV\naws_secret_access_key = x\nregion = us-east-1\n"
        "[profile prod-account]\naws_access_key_id = AKIDPROD\naws_secret_access_key = y\nregion = us-east-1\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    code, _, said = run(capsys, *PROMOTE, "--from-profile", "dev-account", "--to-profile", "prod-account")
    assert code == EXIT_OK, said
    assert f"models/assistant/{VERSION}/manifest.json" in prod.objects()

    code, _, said = run(capsys, *PROMOTE, "--from-profile", "nobody", "--to-profile", "prod-account")
    assert code == EXIT_USAGE
    assert "AWS profile 'nobody' (for dev) is not configured" in said
