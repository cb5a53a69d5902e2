"""Point 2: production serves HTTPS only (TLS 1.3 policy), refuses a config without a certificate unless it
opts out by name, and its load balancer drops invalid headers and mitigates request smuggling."""

from __future__ import annotations

import pytest
import yaml

from stacks.config.environment import config_path_for, load_config, parse_config
from stacks.config.errors import ConfigError
from tests.synth import SynthesizedEnvironment

PLACEHOLDER_ACCOUNT = "111122223333"


def _prod_data() -> dict:
    return yaml.safe_load(config_path_for("prod").read_text())


def test_prod_ships_a_placeholder_certificate_in_the_documentation_account() -> None:
    arn = load_config(config_path_for("prod")).load_balancer.certificate_arn
    assert arn is not None
    assert f":{PLACEHOLDER_ACCOUNT}:certificate/" in arn
    assert "PLACEHOLDER" in config_path_for("prod").read_text()


def test_production_without_a_certificate_is_refused() -> None:
    data = _prod_data()
    del data["load_balancer"]["certificate_arn"]
    with pytest.raises(ConfigError) as raised:
        parse_config(data, source="test")
    assert any(p.startswith("load_balancer.certificate_arn: required") for p in raised.value.problems)


def test_the_named_opt_out_allows_plain_http() -> None:
    data = _prod_data()
    del data["load_balancer"]["certificate_arn"]
    data["load_balancer"]["allow_plain_http_in_production"] = True
    assert not parse_config(data, source="test").load_balancer.is_https


def test_prod_listens_on_https_with_tls13_and_redirects_http(prod: SynthesizedEnvironment) -> None:
    found = prod.resources("Services", "AWS::ElasticLoadBalancingV2::Listener").values()
    listeners = {listener["Properties"]["Port"]: listener["Properties"] for listener in found}
    assert listeners[443]["Protocol"] == "HTTPS"
    assert listeners[443]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-")
    assert listeners[443]["Certificates"][0]["CertificateArn"].endswith("00000000-0000-0000-0000-000000000000")
    assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"


@pytest.mark.parametrize("environment", ["dev", "prod", "variant"])
def test_load_balancer_drops_invalid_headers_and_mitigates_desync(
    environment: str, request: pytest.FixtureRequest
) -> None:
    synthesized: SynthesizedEnvironment = request.getfixturevalue(environment)
    balancers = synthesized.resources("Services", "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert len(balancers) == 2
    for balancer in balancers:
        attributes = {a["Key"]: a["Value"] for a in balancer["Properties"]["LoadBalancerAttributes"]}
        assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
        assert attributes["routing.http.desync_mitigation_mode"] == "defensive"
