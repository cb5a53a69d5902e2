"""`make prices` (tools/refresh_prices.py): its parser on a vendored GetProducts response, the refresh against
botocore's Stubber (a library double of the pricing client: moto does not implement the Price List API),
and its refusal to run without credentials."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from stacks.config.environment import config_path_for
from tools.refresh_prices import (
    EXIT_NO_CREDENTIALS,
    PriceListError,
    filters,
    main,
    parse_price_list,
    refresh,
    wanted_types,
)

SAMPLE = Path(__file__).parent / "data" / "pricing_get_products_inf2_xlarge.json"


def _sample_response() -> dict:
    return json.loads(SAMPLE.read_text())["response"]


def _item(instance_type: str, *usd: str, unit: str = "Hrs") -> str:
    dimensions = {f"D{i}": {"unit": unit, "pricePerUnit": {"USD": price}} for i, price in enumerate(usd)}
    return json.dumps(
        {
            "product": {"attributes": {"instanceType": instance_type}},
            "terms": {"OnDemand": {"T": {"priceDimensions": dimensions}}},
        }
    )


def test_the_vendored_response_parses_to_its_hourly_price() -> None:
    assert parse_price_list(_sample_response()["PriceList"]) == {"inf2.xlarge": 0.7582}


def test_zero_and_non_hourly_dimensions_are_not_prices() -> None:
    assert parse_price_list([_item("g6.xlarge", "0.0000000000"), _item("g6.xlarge", "9.9", unit="GB-Mo")]) == {}


def test_two_different_prices_for_one_type_are_refused() -> None:
    with pytest.raises(PriceListError, match=r"g6.xlarge: several hourly prices \[0.8048, 0.9\]"):
        parse_price_list([_item("g6.xlarge", "0.8048"), _item("g6.xlarge", "0.9")])


def test_a_malformed_item_is_refused_by_its_index() -> None:
    with pytest.raises(PriceListError, match=r"PriceList\[1\]"):
        parse_price_list([_item("g6.xlarge", "0.8048"), json.dumps({"product": {}})])


def test_refresh_asks_one_product_per_region_and_type_and_dates_the_table() -> None:
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106 - fake
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            _sample_response(),
            {"ServiceCode": "AmazonEC2", "Filters": filters("us-east-1", "inf2.xlarge"), "FormatVersion": "aws_v1"},
        )
        stub.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", "PriceList": []},
            {"ServiceCode": "AmazonEC2", "Filters": filters("us-east-1", "trn2.48xlarge"), "FormatVersion": "aws_v1"},
        )
        table = refresh(
            client,
            regions=["us-east-1"],
            instance_types=["inf2.xlarge", "trn2.48xlarge"],
            today="2026-11-26",
            about="t",
        )
        stub.assert_no_pending_responses()
    region = table["regions"]["us-east-1"]
    assert region["prices"] == {"inf2.xlarge": 0.7582}
    assert region["missing"] == ["trn2.48xlarge"]
    assert region["as_of"] == "2026-11-26"
    assert "regionCode us-east-1" in region["source"]


def test_the_filters_are_the_terms_the_table_states() -> None:
    fields = {f["Field"]: f["Value"] for f in filters("us-east-2", "trn1.2xlarge")}
    assert fields == {
        "regionCode": "us-east-2",
        "instanceType": "trn1.2xlarge",
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "marketoption": "OnDemand",
    }


def test_without_credentials_it_says_so_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    output = tmp_path / "prices.json"
    output.write_text('{"regions": {}}\n')
    assert main(["--output", str(output)]) == EXIT_NO_CREDENTIALS
    assert "no AWS credentials found" in capsys.readouterr().err
    assert output.read_text() == '{"regions": {}}\n'


def test_the_refresh_prices_every_type_a_pool_of_the_config_names() -> None:
    current = {"regions": {"us-east-1": {"prices": {"g5.xlarge": 1.006}, "missing": ["trn2.48xlarge"]}}}
    types = wanted_types(current, [config_path_for("dev"), config_path_for("prod")])
    # The table's own types, every Neuron type, and the pools' types (system, scheduler, general, accelerator).
    assert {
        "g5.xlarge",
        "trn2.48xlarge",
        "inf2.48xlarge",
        "m7g.large",
        "m7g.xlarge",
        "m7i.large",
        "c7g.2xlarge",
    } <= set(types)
