"""The vendored on-demand price table (prices.json beside this module): hourly USD prices per region and
instance type, each region with the source and date of its figures. The rollout function (cost per request),
the CLI (`tessera cost`) and `make prices` (which rewrites the file) read it through this module.

A missing region or type is "no price": callers report that, never a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")
HOURS_PER_MONTH = 730  # the 8,760 hours of a year over 12 months, as AWS's own monthly estimates use


@dataclass(frozen=True)
class RegionPrices:
    as_of: str  # the date the figures were published (YYYY-MM-DD)
    source: str
    prices: dict[str, float]  # instance type -> USD per instance-hour, on demand


@dataclass(frozen=True)
class PriceTable:
    regions: dict[str, RegionPrices]

    def hourly(self, region: str, instance_type: str) -> float | None:
        """USD per hour on demand, or None when the table has no figure for that type in that region."""
        prices = self.regions.get(region)
        return None if prices is None else prices.prices.get(instance_type)

    def as_of(self, region: str) -> str | None:
        prices = self.regions.get(region)
        return None if prices is None else prices.as_of

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceTable:
        regions = {}
        for name, entry in data["regions"].items():
            prices = entry["prices"]
            bad = sorted(key for key, value in prices.items() if not isinstance(value, int | float) or value <= 0)
            if bad:
                raise ValueError(f"price table, region {name}: prices of {bad} are not positive numbers")
            regions[name] = RegionPrices(as_of=entry["as_of"], source=entry["source"], prices=dict(prices))
        return cls(regions=regions)


@cache
def price_table() -> PriceTable:
    """The vendored table, read once per process."""
    return PriceTable.from_json(json.loads(PRICES_FILE.read_text()))
