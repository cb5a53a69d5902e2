"""Construct ids made from names in config."""

from __future__ import annotations

import re


def pascal_case(name: str) -> str:
    """`tessera/dev/assistant` -> `TesseraDevAssistant`."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)
