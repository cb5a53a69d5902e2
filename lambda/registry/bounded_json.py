"""How deep a JSON document nests, found without parsing it: Python's parser recurses once per level, so a
document nested tens of thousands deep must be refused before `json.loads` sees it."""

from __future__ import annotations

import re

# A JSON string or a bracket: brackets inside strings do not nest anything.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the document opens more than `limit` arrays or objects inside each other."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False
