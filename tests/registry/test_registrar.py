"""Registration end to end against moto: outcomes, idempotency, conflicts and races."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from registry.store import ConcurrentWriteError, RegistryStore
from tessera_shared.constants import REGISTERED, REJECTED
from tests.registry.world import ASSISTANT_ARTIFACTS, BUCKET, TABLE, World, assistant_manifest

VERSION = "2026-11-20"


def test_a_fitting_version_is_registered(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    outcome = world.registrar().register("assistant", VERSION)
    assert (outcome.outcome, outcome.state, outcome.reasons, outcome.changed) == (REGISTERED, REGISTERED, [], True)
    record = world.store().get_version("assistant", VERSION)
    assert record.state == REGISTERED
    assert record.target["instance_family"] == "trn1"
    assert record.image == "tessera/dev/assistant:vllm-0.16.0-neuronx-sdk2.31.1"
    assert [event["kind"] for event in world.store().history("assistant", VERSION)] == ["registered"]


def test_a_bad_version_is_rejected_with_every_reason(world: World) -> None:
    world.upload(assistant_manifest(neuron_sdk="2.32.0", instance_family="trn2"), {"model.neff": b"short"})
    outcome = world.registrar().register("assistant", VERSION)
    assert outcome.outcome == REJECTED
    assert len(outcome.reasons) == 4  # family, SDK, one artifact's size, one missing artifact
    record = world.store().get_version("assistant", VERSION)
    assert record.state == REJECTED
    assert record.reasons == outcome.reasons


def test_unknown_service(world: World) -> None:
    manifest = assistant_manifest(service="painter")
    world.upload(manifest, ASSISTANT_ARTIFACTS)
    outcome = world.registrar().register("painter", VERSION)
    assert outcome.reasons == [
        "service 'painter' is not in this environment (services: assistant, embeddings, gateway)"
    ]


def test_missing_manifest(world: World) -> None:
    outcome = world.registrar().register("assistant", "never-uploaded")
    assert outcome.reasons == [f"manifest not found at s3://{BUCKET}/models/assistant/never-uploaded/manifest.json"]


def test_unparseable_manifest_is_rejected_not_crashed(world: World) -> None:
    world.s3.put_object(Bucket=BUCKET, Key=f"models/assistant/{VERSION}/manifest.json", Body=b"[]")
    outcome = world.registrar().register("assistant", VERSION)
    assert outcome.outcome == REJECTED
    assert outcome.reasons[0].startswith("manifest:")


def test_registering_twice_changes_nothing(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    first = world.registrar().register("assistant", VERSION)
    again = world.registrar().register("assistant", VERSION)
    assert (again.outcome, again.state, again.changed) == (first.outcome, first.state, False)
    assert len(world.store().history("assistant", VERSION)) == 1


def test_rejecting_twice_changes_nothing(world: World) -> None:
    world.upload(assistant_manifest(neuron_sdk="2.32.0"), ASSISTANT_ARTIFACTS)
    first = world.registrar().register("assistant", VERSION)
    again = world.registrar().register("assistant", VERSION)
    assert again.reasons == first.reasons
    assert len(world.store().history("assistant", VERSION)) == 1


def test_a_different_manifest_for_a_registered_version_is_a_conflict(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    world.registrar().register("assistant", VERSION)
    world.upload(assistant_manifest(batch_size=8), ASSISTANT_ARTIFACTS)
    for _ in range(2):  # a re-delivered conflicting event records the conflict once
        outcome = world.registrar().register("assistant", VERSION)
        assert outcome.outcome == REJECTED
        assert "already REGISTERED with a different manifest" in outcome.reasons[0]
    record = world.store().get_version("assistant", VERSION)
    assert record.state == REGISTERED
    assert record.target["batch_size"] == 4  # never overwritten
    assert [event["kind"] for event in world.store().history("assistant", VERSION)] == ["registered", "conflict"]


def test_a_rejected_version_is_checked_again(world: World) -> None:
    """The manifest arrived before one of its artifacts; registering again once it is there succeeds."""
    world.upload(assistant_manifest(), {"model.neff": ASSISTANT_ARTIFACTS["model.neff"]})
    assert world.registrar().register("assistant", VERSION).outcome == REJECTED
    world.s3.put_object(
        Bucket=BUCKET,
        Key=f"models/assistant/{VERSION}/tokenizer.json",
        Body=ASSISTANT_ARTIFACTS["tokenizer.json"],
        ChecksumAlgorithm="SHA256",
    )
    outcome = world.registrar().register("assistant", VERSION)
    assert (outcome.outcome, outcome.changed) == (REGISTERED, True)
    assert [event["kind"] for event in world.store().history("assistant", VERSION)] == ["rejected", "registered"]


class StaleReadStore(RegistryStore):
    """Reads 'no such version' once, as a registration that lost a race would, then reads for real."""

    def __init__(self, client: object, table: str) -> None:
        super().__init__(client, table)
        self.stale_reads = 1

    def get_version(self, service: str, version: str):
        if self.stale_reads:
            self.stale_reads -= 1
            return None
        return super().get_version(service, version)


def test_racing_registrations_of_the_same_manifest_agree(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    winner = world.registrar().register("assistant", VERSION)
    loser = world.registrar(StaleReadStore(world.dynamodb, "tessera-dev-model-registry")).register("assistant", VERSION)
    assert winner.changed
    assert not loser.changed
    assert loser.outcome == REGISTERED
    assert len(world.store().history("assistant", VERSION)) == 1


def test_racing_registrations_of_different_manifests_exactly_one_wins(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    winner = world.registrar().register("assistant", VERSION)
    world.upload(assistant_manifest(batch_size=16), ASSISTANT_ARTIFACTS)
    loser = world.registrar(StaleReadStore(world.dynamodb, "tessera-dev-model-registry")).register("assistant", VERSION)
    assert winner.outcome == REGISTERED
    assert loser.outcome == REJECTED
    assert "different manifest" in loser.reasons[0]
    assert world.store().get_version("assistant", VERSION).target["batch_size"] == 4


def test_conditional_create_refuses_a_second_writer(world: World) -> None:
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    world.registrar().register("assistant", VERSION)
    record = world.store().get_version("assistant", VERSION)
    try:
        world.store().create_version(record, {"kind": "registered", "at": "later", "state": REGISTERED, "reasons": []})
    except ConcurrentWriteError:
        pass
    else:
        raise AssertionError("a second create of the same version must fail")


def test_listing_versions(world: World) -> None:
    for version in ("v1", "v2"):
        manifest = assistant_manifest(version=version)
        world.upload(manifest, ASSISTANT_ARTIFACTS)
        world.registrar().register("assistant", version)
    records = world.store().list_versions("assistant")
    assert [(r.version, r.state) for r in records] == [("v1", REGISTERED), ("v2", REGISTERED)]
    assert json.dumps([r.target for r in records])  # stored targets are plain JSON


def test_every_stamp_the_registry_writes_comes_from_its_store_s_clock(world: World) -> None:
    """One injected clock (issue 23, problem 5): the registry store and the registrar stamp from the same one."""
    moment = datetime(2026, 11, 20, 8, 30, 15, 250000, tzinfo=UTC)
    store = RegistryStore(world.dynamodb, TABLE, clock=lambda: moment)
    world.upload(assistant_manifest(), ASSISTANT_ARTIFACTS)
    world.registrar(store).register("assistant", VERSION)
    store.record_ignored(event_id="e-1", reason="unknown service", key="models/x/1/manifest.json", source="test")
    record = store.get_version("assistant", VERSION)
    assert record is not None
    stamp = "2026-11-20T08:30:15.250+00:00"
    assert (record.created_at, record.updated_at) == (stamp, stamp)
    assert [event["at"] for event in store.history("assistant", VERSION)] == [stamp]
    [ignored] = store.list_ignored()  # kept until its expiry by the same clock
    assert ignored["at"] == stamp
