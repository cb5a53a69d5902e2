"""`make prices`: rewrite the vendored price table (lambda/tessera_shared/prices.json) from the AWS Price
List API, dated today.

Asks GetProducts (the API's endpoint is in us-east-1) for each region and instance type, with the terms the
table states: Linux, shared tenancy, no pre-installed software, capacity status Used, on demand. The types
are those the table already prices, every Neuron type of stacks/config/instance_types.py, and every type a
pool of config/*.yaml names. A type the API has no price for in a region goes to that region's `missing`.
Needs AWS credentials (any identity allowed pricing:GetProducts); without them it says so and changes nothing.

    make prices        # or: python -m tools.refresh_prices [--output PATH] [--region R ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stacks.config.environment import load_config
from stacks.config.instance_types import NEURON_INSTANCE_TYPES
from tessera_shared.prices import PRICES_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
# Regions with Trainium or Inferentia2 capacity where Tessera is likely to run; extend with --region.
REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1")
PRICING_ENDPOINT_REGION = "us-east-1"
TERMS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "marketoption": "OnDemand",
}
EXIT_NO_CREDENTIALS = 2
EXIT_BAD_ANSWER = 1


class PriceListError(ValueError):
    """An answer of the Price List API that does not give one clear hourly price."""


def filters(region: str, instance_type: str) -> list[dict[str, str]]:
    wanted = {"regionCode": region, "instanceType": instance_type, **TERMS}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in wanted.items()]


def parse_price_list(items: Iterable[str]) -> dict[str, float]:
    """Instance type -> USD per hour from GetProducts' PriceList (JSON strings). Each item's on-demand
    price dimensions in hours are read; zero prices are not prices. Two different prices for one type
    are an error: the filters did not single out one product."""
    prices: dict[str, float] = {}
    for index, raw in enumerate(items):
        try:
            item = json.loads(raw)
            instance_type = item["product"]["attributes"]["instanceType"]
            terms = item["terms"].get("OnDemand", {})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise PriceListError(
                f"PriceList[{index}] is not a price list item with product and terms: {error}"
            ) from None
        found = {
            float(dimension["pricePerUnit"]["USD"])
            for term in terms.values()
            for dimension in term.get("priceDimensions", {}).values()
            if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {})
        } - {0.0}
        if instance_type in prices:
            found.add(prices[instance_type])
        if len(found) > 1:
            raise PriceListError(
                f"{instance_type}: several hourly prices {sorted(found)}; the filters match more than one product"
            )
        if found:
            prices[instance_type] = found.pop()
    return prices


def region_prices(client: Any, region: str, instance_types: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """(prices, types without a price) of one region."""
    prices: dict[str, float] = {}
    for instance_type in instance_types:
        pages = client.get_paginator("get_products").paginate(
            ServiceCode="AmazonEC2", Filters=filters(region, instance_type), FormatVersion="aws_v1"
        )
        items = [raw for page in pages for raw in page.get("PriceList", [])]
        found = parse_price_list(items)
        if instance_type in found:
            prices[instance_type] = found[instance_type]
    return prices, sorted(set(instance_types) - set(prices))


def wanted_types(current: dict, config_files: Iterable[Path]) -> list[str]:
    types = set(NEURON_INSTANCE_TYPES)
    for entry in current.get("regions", {}).values():
        types |= set(entry["prices"]) | set(entry.get("missing", []))
    for path in config_files:
        cluster = load_config(path).cluster
        fixed = (cluster.system_pool, cluster.scheduler_pool, cluster.general_pool)
        types |= {name for pool in fixed for name in pool.instance_types}
        types |= {name for pool in cluster.accelerator_pools for name in pool.instance_types}
    return sorted(types)


def refresh(client: Any, *, regions: Sequence[str], instance_types: Sequence[str], today: str, about: str) -> dict:
    table: dict = {"about": about, "currency": "USD", "unit": "instance-hour", "regions": {}}
    terms = ", ".join(f"{field} {value}" for field, value in TERMS.items())
    for region in regions:
        prices, missing = region_prices(client, region, instance_types)
        table["regions"][region] = {
            "as_of": today,
            "source": f"AWS Price List API, GetProducts (ServiceCode AmazonEC2, regionCode {region}, {terms}), "
            f"fetched {today} by tools/refresh_prices.py",
            "missing": missing,
            "prices": dict(sorted(prices.items())),
        }
    return table


def main(argv: Sequence[str] | None = None, *, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=PRICES_FILE)
    parser.add_argument("--region", action="append", help=f"region to price (repeatable); default {', '.join(REGIONS)}")
    args = parser.parse_args(argv)
    if session is None:
        import boto3  # only the refresh needs it

        session = boto3.session.Session()
    if session.get_credentials() is None:
        print(
            "make prices: no AWS credentials found (environment, profile or instance role); the price table "
            f"{args.output} is unchanged. Configure credentials allowed pricing:GetProducts and run it again.",
            file=sys.stderr,
        )
        return EXIT_NO_CREDENTIALS
    current = json.loads(args.output.read_text()) if args.output.exists() else {}
    types = wanted_types(current, sorted((REPO_ROOT / "config").glob("*.yaml")))
    client = session.client("pricing", region_name=PRICING_ENDPOINT_REGION)
    try:
        table = refresh(
            client,
            regions=args.region or REGIONS,
            instance_types=types,
            today=datetime.now(UTC).date().isoformat(),
            about=current.get("about", "On-demand hourly prices in USD of the EC2 instance types Tessera's pools use."),
        )
    except PriceListError as error:
        print(f"make prices: {error}; the price table is unchanged", file=sys.stderr)
        return EXIT_BAD_ANSWER
    args.output.write_text(json.dumps(table, indent=1) + "\n")
    priced = sum(len(entry["prices"]) for entry in table["regions"].values())
    print(f"wrote {args.output}: {priced} prices in {len(table['regions'])} regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
