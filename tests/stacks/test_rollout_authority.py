"""Issue 20, item 11, as the templates carry it: what the rollout function and the track owner trust comes from
the stacks (a function's environment, resource tags), never from an event or a parameter anyone else may write."""

from __future__ import annotations

from tessera_shared.constants import image_repository_variable
from tests.synth import SynthesizedEnvironment


def test_the_track_owner_learns_each_services_repository_from_its_environment(dev: SynthesizedEnvironment) -> None:
    [function] = [
        f["Properties"]
        for f in dev.resources("Services", "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "rollout.track_owner.handle"
    ]
    variables = function["Environment"]["Variables"]
    for service in dev.config.services:
        host = [{"Ref": "AWS::AccountId"}, ".dkr.ecr.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}]
        uri = {"Fn::Join": ["", [*host, f"/{service.image.repository}"]]}
        assert variables[image_repository_variable(service.name)] == uri
    # Not a property of the custom resource: anyone who may invoke the function can write those.
    for tracks in dev.resources("Services", "Custom::TesseraServiceTracks").values():
        assert sorted(tracks["Properties"]) == ["Namespace", "Objects", "Service", "ServiceToken"]
