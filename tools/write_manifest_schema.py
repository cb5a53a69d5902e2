"""Writes schemas/model-manifest.schema.json from the registry's manifest model (`make schema`)."""

from __future__ import annotations

import json
from pathlib import Path

from registry.manifest import manifest_json_schema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "model-manifest.schema.json"


def main() -> None:
    SCHEMA_PATH.write_text(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
