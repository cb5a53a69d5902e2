"""Shared pieces of the config models: the strict base class and list checks."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


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


def check_log_retention(value: int) -> int:
    if value not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(days) for days in LOG_RETENTION_DAYS)
        raise ValueError(f"{value} is not a CloudWatch Logs retention period; use one of {allowed}")
    return value


# An IAM role ARN (any partition); a path is allowed. With wildcards, the `*` of an ArnLike pattern too.
_ROLE_ARN = r"arn:aws[a-z-]*:iam::\d{{12}}:role/[\w+=,.@/{extra}-]{{1,512}}"


def iam_role_arns(arns: list[str], *, wildcards: bool = False) -> list[str]:
    """Each entry an IAM role ARN, else one problem per entry."""
    pattern = _ROLE_ARN.format(extra="*" if wildcards else "")
    raise_if_any(
        [
            f"[{index}] {arn!r} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)"
            for index, arn in enumerate(arns)
            if not re.fullmatch(pattern, arn)
        ]
    )
    return arns
