"""Issue 22, problem 7: every Python dependency (the app, the dev tools, checkov), direct or not, is installed from a
lock file with its hashes, and pip refuses a file whose hash does not match; GitHub Actions are pinned by commit."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.synth import REPO_ROOT

LOCKS = ("requirements-dev.lock", "requirements-checkov.lock")
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) \\$")


def _entries(lock: Path) -> dict[str, list[str]]:
    """name -> its hashes, for every pinned requirement of the lock."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if match := PIN.match(line):
            current = match[1].lower().replace("_", "-").replace(".", "-")
            entries[current] = []
        elif current and (hashed := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[current].append(hashed[1])
    return entries


@pytest.mark.parametrize("name", LOCKS)
def test_every_entry_is_pinned_with_hashes(name: str) -> None:
    entries = _entries(REPO_ROOT / name)
    assert len(entries) > 50
    assert all(entries.values()), [package for package, hashes in entries.items() if not hashes]


def test_every_installed_package_is_in_the_lock() -> None:
    """What make setup installed is the lock, nothing more (the project itself is installed editable)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    installed = {line.split("==")[0].lower().replace("_", "-").replace(".", "-") for line in frozen.splitlines()}
    missing = installed - set(_entries(REPO_ROOT / "requirements-dev.lock"))
    assert missing == set()


def test_make_setup_installs_only_from_the_locks_with_hash_checking() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    installs = [line.strip() for line in makefile.splitlines() if "pip install" in line and " -r " in line]
    assert installs
    for line in installs:
        assert "--require-hashes" in line
        assert line.split(" -r ")[1].split()[0] in LOCKS


def _wheel(folder: Path) -> Path:
    """A minimal wheel, built here so the check needs no network."""
    wheel = folder / "tessera_probe-1.0-py3-none-any.whl"
    files = {
        "tessera_probe/__init__.py": b"",
        "tessera_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tessera-probe\nVersion: 1.0\n",
        "tessera_probe-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr("tessera_probe-1.0.dist-info/RECORD", record + "tessera_probe-1.0.dist-info/RECORD,,\n")
    return wheel


def test_a_tampered_lock_entry_is_refused(tmp_path: Path) -> None:
    """The install make setup runs, on a scratch lock of one package: the right hash installs, another is refused."""
    wheel = _wheel(tmp_path)
    right = hashlib.sha256(wheel.read_bytes()).hexdigest()

    def install(digest: str) -> subprocess.CompletedProcess:
        lock = tmp_path / "scratch.lock"
        lock.write_text(f"tessera-probe==1.0 \\\n    --hash=sha256:{digest}\n")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += ["--require-hashes", "-r", str(lock), "--no-index", "--find-links", str(tmp_path)]
        command += ["--target", str(tmp_path / "installed")]
        return subprocess.run(command, capture_output=True, text=True)

    refused = install("0" * 64)
    assert refused.returncode != 0
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert not (tmp_path / "installed" / "tessera_probe").exists()
    assert install(right).returncode == 0
    assert (tmp_path / "installed" / "tessera_probe").is_dir()


def test_github_actions_are_pinned_by_commit() -> None:
    for workflow in (REPO_ROOT / ".github" / "workflows").glob("*.yml"):
        for line in workflow.read_text().splitlines():
            if "uses:" in line:
                reference = line.split("uses:")[1].split("#")[0].strip()
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", reference), (workflow.name, line)
