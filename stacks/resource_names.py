"""Names that several stacks and tools derive on their own instead of passing outputs around."""

from __future__ import annotations

import re
from pathlib import Path


def model_bucket_name(environment_name: str, *, account: str, region: str) -> str:
    """The model bucket is named from account and region, so later stacks, pods and the operator CLI
    can name it without a look-up (bucket names are global; account and region keep it unique)."""
    return f"tessera-{environment_name}-models-{account}-{region}"


LAMBDA_CODE_DIR = Path(__file__).resolve().parent.parent / "lambda"


def registry_table_name(environment_name: str) -> str:
    return f"tessera-{environment_name}-model-registry"


def pascal_case(name: str) -> str:
    """`tessera/dev/assistant` -> `TesseraDevAssistant`: construct ids made from config names."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
