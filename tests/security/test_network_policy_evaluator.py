"""The NetworkPolicy evaluator the isolation tables rely on follows the API's semantics."""

from __future__ import annotations

import pytest

from tests.security.network_policies import Peer, allowed

WEB = Peer("web", "10.0.0.5", "apps", {"app": "web"})
DB = Peer("db", "10.0.0.6", "apps", {"app": "db"})
DNS = Peer("dns", "10.0.1.7", "kube-system", {"k8s-app": "kube-dns"})
OUTSIDE = Peer("outside", "203.0.113.9")


def _policy(selector: dict, *, namespace: str = "apps", **spec: object) -> dict:
    return {
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"podSelector": {"matchLabels": selector}, **spec},
    }


def test_unselected_pods_are_open() -> None:
    policies = [_policy({"app": "db"}, policyTypes=["Ingress"])]
    assert allowed(policies, DB, WEB, 80)
    assert not allowed(policies, WEB, DB, 5432)


def test_default_deny_isolates_both_directions() -> None:
    policies = [_policy({}, policyTypes=["Ingress", "Egress"])]
    assert not allowed(policies, WEB, DB, 5432)
    assert not allowed(policies, WEB, OUTSIDE, 443)
    assert not allowed(policies, OUTSIDE, WEB, 80)
    assert allowed(policies, DNS, OUTSIDE, 443)  # another namespace


def test_policies_add_up_and_need_both_ends() -> None:
    deny = _policy({}, policyTypes=["Ingress", "Egress"])
    web_out = _policy(
        {"app": "web"}, policyTypes=["Egress"], egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]
    )
    db_in = _policy(
        {"app": "db"},
        policyTypes=["Ingress"],
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}],
    )
    assert not allowed([deny, web_out], WEB, DB, 5432)
    assert allowed([deny, web_out, db_in], WEB, DB, 5432)
    assert not allowed([deny, web_out, db_in], WEB, DB, 5433)
    assert not allowed([deny, web_out, db_in], WEB, DB, 5432, "UDP")


def test_ip_blocks_honour_except() -> None:
    policies = [
        _policy(
            {},
            policyTypes=["Egress"],
            egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/16"]}}], "ports": [{"port": 443}]}],
        )
    ]
    assert allowed(policies, WEB, OUTSIDE, 443)
    assert not allowed(policies, WEB, DNS, 443)


def test_namespace_and_pod_selectors_combine() -> None:
    to_dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    policies = [
        _policy({}, policyTypes=["Egress"], egress=[{"to": [to_dns], "ports": [{"protocol": "UDP", "port": 53}]}])
    ]
    assert allowed(policies, WEB, DNS, 53, "UDP")
    assert not allowed(policies, WEB, Peer("other", "10.0.1.8", "kube-system", {"k8s-app": "other"}), 53, "UDP")
    # A pod selector alone stays within the policy's namespace.
    alone = [
        _policy(
            {}, policyTypes=["Egress"], egress=[{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]}]
        )
    ]
    assert not allowed(alone, WEB, DNS, 53, "UDP")


def test_unsupported_selectors_are_refused_rather_than_guessed() -> None:
    policies = [_policy({}, policyTypes=["Ingress"], ingress=[{"from": [{"podSelector": {"matchExpressions": []}}]}])]
    with pytest.raises(NotImplementedError):
        allowed(policies, DB, WEB, 80)
