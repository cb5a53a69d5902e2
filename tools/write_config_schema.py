"""Generates config/schema.json, the JSON Schema of an environment file, from the pydantic models.

`python -m tools.write_config_schema` rewrites it; a test fails when the committed file is out of date.
"""

from __future__ import annotations

import json

from stacks.config.environment import CONFIG_DIR, EnvironmentConfig

SCHEMA_PATH = CONFIG_DIR / "schema.json"


def render_schema() -> str:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tessera.dev/schemas/environment-config.json",
        **EnvironmentConfig.model_json_schema(),
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
