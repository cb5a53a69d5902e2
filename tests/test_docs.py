"""The README is the newcomer's path and stays short; the reference lives in docs/. Every relative link resolves
(file and heading), and the Node version agrees across the README, package.json and CI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.synth import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#([a-z0-9-]+))?\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_the_short_path() -> None:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    for section in ("## Two commands", "## Architecture at a glance", "### Where things live", "## Your first rollout"):
        assert section in lines


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target, anchor in LINK.findall(page.read_text()):
        linked = (page.parent / target).resolve()
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in _anchors(linked), f"{page.name}: {target}#{anchor}"


def test_every_reference_page_is_in_the_readme_s_index() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, page.name


def test_one_node_version() -> None:
    engines = json.loads((REPO_ROOT / "package.json").read_text())["engines"]["node"]
    ci = re.findall(r'node-version: "(\d+)"', (REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    readme = re.findall(r"Node (\d+)\+", (REPO_ROOT / "README.md").read_text())
    assert engines == f">={ci[0]}"
    assert readme == ci == [ci[0]]
