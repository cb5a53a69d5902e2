"""Shared set-up for tests that run against moto."""

from __future__ import annotations

from typing import Any

import pytest

REGION = "us-east-1"


def use_fake_credentials(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """moto needs credentials to sign with; these keep any real ones out of reach."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }.items():
        monkeypatch.setenv(name, value)


def create_registry_table(dynamodb: Any, name: str) -> None:
    """The registry table's key schema, as the Artifacts stack creates it."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
