"""Shared pieces of the config models: the strict base class and list checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors and parsed objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def duplicates(list_name: str, values: list[str], *, field: str = "") -> list[str]:
    """One problem line per value that repeats an earlier one, e.g. `services[3].name: ... duplicates ...`."""
    suffix = f".{field}" if field else ""
    first_index: dict[str, int] = {}
    problems = []
    for index, value in enumerate(values):
        if value in first_index:
            problems.append(
                f"{list_name}[{index}]{suffix}: {value!r} duplicates {list_name}[{first_index[value]}]{suffix}"
            )
        else:
            first_index[value] = index
    return problems


def raise_if_any(problems: list[str]) -> None:
    """Model validators report every problem at once, one `<relative path>: <message>` line each."""
    if problems:
        raise ValueError("\n".join(problems))
