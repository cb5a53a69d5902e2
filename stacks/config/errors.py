"""Turns pydantic validation errors into one line per problem: `<field path>: <what was wrong>`."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

# A model validator may report problems of nested fields as "<relative path>: <message>" lines,
# and a list validator problems of single items as "[<index>] <message>" lines.
_RELATIVE_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*: ")
_ITEM_INDEX = re.compile(r"^(\[\d+\]) ")


class ConfigError(Exception):
    """A configuration file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def format_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def format_validation_error(error: ValidationError, root: type[BaseModel]) -> list[str]:
    problems: list[str] = []
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        path = format_path(_walk(root, loc)[1])
        if detail["type"] in ("union_tag_not_found", "union_tag_invalid"):
            problems.append(_tag_problem(detail, root, loc, path))
        elif detail["type"] == "value_error":
            problems.extend(_value_error_lines(path, str(detail["ctx"]["error"])))
        else:
            message = _describe(detail, root, loc)
            problems.append(f"{path}: {message}" if path else message)
    return problems


def _value_error_lines(path: str, message: str) -> list[str]:
    lines = []
    for line in message.splitlines():
        item = _ITEM_INDEX.match(line)
        if item:
            lines.append(f"{path}{item.group(1)}: {line[item.end() :]}")
        elif _RELATIVE_PATH.match(line):
            lines.append(f"{path}.{line}" if path else line)
        else:
            lines.append(f"{path}: {line}" if path else line)
    return lines


def _describe(detail: Mapping[str, Any], root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx", {})
    value = detail.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_key_message(str(loc[-1]), _model_at(root, loc[:-1]), _kinds_with(root, loc))
    if kind == "string_pattern_mismatch":
        return f"{value!r} must match {ctx['pattern']}"
    if kind == "literal_error":
        return f"{value!r} must be one of {ctx['expected']}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{value!r} must be a whole number"
    if kind in ("string_type",):
        return f"{value!r} must be a string"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys to values, got {type(value).__name__}"
    if kind == "list_type":
        return f"must be a list, got {type(value).__name__}"
    bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        shown = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
        return f"{value!r} must be {bounds[kind]} {shown}"
    if kind == "too_short":
        return f"needs at least {ctx['min_length']} item(s), got {ctx['actual_length']}"
    if kind == "too_long":
        return f"allows at most {ctx['max_length']} item(s), got {ctx['actual_length']}"
    if kind == "string_too_short":
        return f"{value!r} must be at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"{value!r} must be at most {ctx['max_length']} characters"
    return f"{detail['msg']} (got {value!r})"


def _unknown_key_message(key: str, model: type[BaseModel] | None, kinds: list[str]) -> str:
    if model is None:
        return f"unknown key {key!r}"
    allowed = list(model.model_fields)
    if kinds:
        return f"unknown key {key!r}; only {' or '.join(kinds)} has it; allowed keys: {', '.join(allowed)}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r}; {hint}allowed keys: {', '.join(allowed)}"


def _kinds_with(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """For a key unknown to one member of a discriminated union: the other members that have it, as
    `<discriminator>: <tag>` (a GPU limit written on a Neuron pool points to `kind: gpu`)."""
    if len(loc) < 3:
        return []
    union = _walk(root, loc[:-2])[0]
    members, tag = _tagged_members(union), loc[-2]
    if tag not in members:
        return []
    discriminator = _discriminator(union)
    return [f"{discriminator}: {other}" for other, model in members.items() if loc[-1] in model.model_fields]


def _tag_problem(detail: Mapping[str, Any], root: type[BaseModel], loc: tuple[int | str, ...], path: str) -> str:
    """A discriminated union's missing or unknown tag, reported at the tag's own field."""
    tag_field = str(detail["ctx"]["discriminator"]).strip("'")
    tags = ", ".join(repr(tag) for tag in _tagged_members(_walk(root, loc)[0]))
    if detail["type"] == "union_tag_not_found":
        return f"{path}.{tag_field}: required field is missing (one of {tags})"
    return f"{path}.{tag_field}: {detail['ctx']['tag']!r} must be one of {tags}"


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`."""
    current = _unwrap(_walk(root, loc)[0])
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _walk(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[object, tuple[int | str, ...]]:
    """The annotation that validates the value at `loc`, found by walking the field annotations, and `loc` without
    the tags pydantic inserts for a discriminated union (they name a model, not a field the user wrote)."""
    current: object = root
    fields: list[int | str] = []
    for part in loc:
        members = _tagged_members(current)
        if isinstance(part, str) and part in members:
            current = members[part]
            continue
        fields.append(part)
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        else:
            current = None
    return current, tuple(fields)


def _tagged_members(annotation: object) -> dict[str, type[BaseModel]]:
    """A discriminated union's models by tag (`Annotated[A | B, Field(discriminator=...)]`); empty otherwise."""
    discriminator = _discriminator(annotation)
    if discriminator is None:
        return {}
    return {
        tag: member
        for member in typing.get_args(typing.get_args(annotation)[0])
        for tag in typing.get_args(member.model_fields[discriminator].annotation)
    }


def _discriminator(annotation: object) -> str | None:
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    metadata = typing.get_args(annotation)[1:]
    discriminator = next((item.discriminator for item in metadata if isinstance(item, FieldInfo)), None)
    return discriminator if isinstance(discriminator, str) else None


def _unwrap(annotation: object) -> object:
    """The annotation without `Annotated[...]` and without `| None`."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
