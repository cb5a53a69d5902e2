"""The images each Helm chart that Tessera installs makes the nodes pull, read from data/images.yaml (each chart's
defaults at the pinned version) and the values Tessera gives the chart. Nothing here runs at synth: the image-pull
tests and docs/images.md read it, so that a chart moved to a new version, or a value that changes an image, is
noticed before a deploy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

INVENTORY_FILE = Path(__file__).parent / "data" / "images.yaml"
# Value keys that name an image in the charts Tessera installs; a value set under any other path with one of these
# names would change an image this inventory does not know about.
IMAGE_KEYS = frozenset({"image", "registry", "repository"})
_MISSING = object()


class NotInventoriedError(LookupError):
    """A chart (or chart version) without an entry in data/images.yaml."""


@dataclass(frozen=True)
class ChartImage:
    component: str
    values_path: str
    repository: str
    tag: str
    registry: str | None = None
    digest: str | None = None
    requires: tuple[str, ...] = ()
    helm_condition: tuple[str, ...] = ()
    defaults: Mapping[str, object] | None = None

    def is_enabled(self, values: Mapping) -> bool:
        """`requires`: every key true; `helm_condition` (Chart.yaml): the first key that is set decides."""
        if not all(self._value(values, key) for key in self.requires):
            return False
        for key in self.helm_condition:
            value = self._value(values, key)
            if value is not _MISSING:
                return bool(value)
        return True

    def reference(self, values: Mapping) -> str:
        """The image reference the chart renders with these values (chart defaults where Tessera sets nothing)."""
        override = _lookup(values, self.values_path)
        override = override if isinstance(override, Mapping) else {}
        registry = override.get("registry", self.registry)
        repository = override.get("repository", self.repository)
        reference = f"{registry}/{repository}" if registry else repository
        reference += f":{override.get('tag', self.tag)}"
        digest = override.get("digest", self.digest)
        return f"{reference}@{digest}" if digest else reference

    def _value(self, values: Mapping, key: str) -> object:
        value = _lookup(values, key)
        if value is _MISSING:
            return (self.defaults or {}).get(key, _MISSING)
        return value


@dataclass(frozen=True)
class ChartEntry:
    name: str
    version: str
    source: Mapping[str, object]
    images: tuple[ChartImage, ...]
    verified: bool = True

    def pulled_images(self, values: Mapping) -> list[tuple[str, str]]:
        """(component, reference) of every image the chart runs with these values."""
        unknown = sorted(unmodelled_image_values(values, {image.values_path for image in self.images}))
        if unknown:
            raise NotInventoriedError(
                f"{self.name}: values {', '.join(unknown)} set an image that stacks/cluster/data/images.yaml does not "
                "list for this chart"
            )
        return [(image.component, image.reference(values)) for image in self.images if image.is_enabled(values)]


@dataclass(frozen=True)
class Inventory:
    charts: Mapping[str, ChartEntry]
    addons: tuple[str, ...]

    def chart(self, name: str, version: str) -> ChartEntry:
        entry = self.charts.get(name)
        if entry is None or entry.version != version:
            known = f"only {entry.version}" if entry else "no version"
            raise NotInventoriedError(
                f"chart {name} {version}: stacks/cluster/data/images.yaml lists {known}; read the chart's values.yaml "
                "at that version and record its images"
            )
        return entry


def load_inventory(path: Path = INVENTORY_FILE) -> Inventory:
    data = yaml.safe_load(path.read_text())
    charts = {
        name: ChartEntry(
            name=name,
            version=str(chart["version"]),
            source=chart["source"],
            verified=chart.get("verified", True),
            images=tuple(_chart_image(image) for image in chart["images"]),
        )
        for name, chart in data["charts"].items()
    }
    return Inventory(charts=charts, addons=tuple(data["addons"]))


def _chart_image(data: Mapping) -> ChartImage:
    return ChartImage(
        component=data["component"],
        values_path=data["values"],
        repository=data["repository"],
        tag=str(data["tag"]),
        registry=data.get("registry"),
        digest=data.get("digest"),
        requires=tuple(data.get("requires", ())),
        helm_condition=tuple(data.get("helm_condition", ())),
        defaults=data.get("defaults"),
    )


def unmodelled_image_values(values: Mapping, known_paths: set[str], prefix: str = "") -> set[str]:
    """Paths of values named like an image key that are neither a known image path nor inside one."""
    found: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if path in known_paths:
            continue
        if key in IMAGE_KEYS:
            found.add(path)
        if isinstance(value, Mapping):
            found |= unmodelled_image_values(value, known_paths, f"{path}.")
    return found


def _lookup(values: Mapping, dotted: str) -> object:
    current: object = values
    for part in dotted.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current
