"""`make test` runs mypy with the project's configuration; this shows that configuration catches a type error in each
mode (strict for the Lambda packages, standard elsewhere) rather than passing everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.synth import REPO_ROOT

WRONG_TYPES = """
def total(counts: list[int]) -> int:
    return sum(counts) + "1"
"""
UNTYPED = """
def untyped(value):
    return value
"""


def _mypy(root: Path, target: str) -> subprocess.CompletedProcess[str]:
    """mypy as `make test` runs it, from `root` (module names come from paths under it)."""
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO_ROOT / "pyproject.toml"), target]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=root, timeout=120)


def test_make_test_runs_the_type_checker_over_the_code() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) -m mypy $(TYPED)" in test_recipe
    typed = next(line for line in makefile.splitlines() if line.startswith("TYPED = ")).split()[2:]
    assert {"lambda/rollout", "lambda/registry", "lambda/tessera_shared", "tessera_cli", "stacks", "tools"} <= set(
        typed
    )


@pytest.mark.parametrize(
    ("package", "source", "code"), [("anywhere", WRONG_TYPES, "operator"), ("rollout", UNTYPED, "no-untyped-def")]
)
def test_a_type_error_fails_the_check(tmp_path: Path, package: str, source: str, code: str) -> None:
    """A wrong operand anywhere; in a Lambda package (strict), even a function without annotations."""
    module = tmp_path / package
    module.mkdir()
    (module / "__init__.py").write_text("")
    (module / "example.py").write_text(source)
    result = _mypy(tmp_path, f"{package}/example.py")
    assert result.returncode == 1, result.stdout
    assert f"[{code}]" in result.stdout
