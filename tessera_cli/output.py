"""Human-readable output by default, one JSON document with --json."""

from __future__ import annotations

import json
import sys
from typing import Any


class Printer:
    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, human: str) -> None:
        print(json.dumps(data, indent=2, sort_keys=True, default=str) if self.as_json else human)

    def error(self, message: str) -> None:
        if self.as_json:
            print(json.dumps({"error": message}))
        else:
            print(f"error: {message}", file=sys.stderr)
