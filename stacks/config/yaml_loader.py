"""Reads a YAML config file into a mapping, with one-line errors and no silently repeated keys."""

from __future__ import annotations

from pathlib import Path

import yaml

from stacks.config.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml_mapping(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read file: {error.strerror}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(path), [f"invalid YAML: {where}{error.problem or error.context}"]) from None
    except yaml.YAMLError as error:
        raise ConfigError(str(path), [f"invalid YAML: {error}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"must be a mapping of keys to values, got {type(data).__name__}"])
    return data
