"""A pipeline home for the tests: config/dev.yaml with a pipeline section, beside a copy of config/prod.yaml; dev in
the pipeline's account, prod in another account, in two waves (us-east-1, where its certificate lives, of two
accounts), after a manual approval."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from stacks.config.environment import CONFIG_DIR

PIPELINE_ACCOUNT = "111122223333"
PROD_ACCOUNTS = ("444455556666", "777788889999")
REPOSITORY = "example-org/tessera"
CONNECTION = "arn:aws:codeconnections:us-east-1:111122223333:connection/0f0e0d0c-0b0a-0908-0706-050403020100"

PIPELINE = {
    "connection_arn": CONNECTION,
    "repository": REPOSITORY,
    "branch": "main",
    "account": PIPELINE_ACCOUNT,
    "region": "us-east-1",
    "stages": [
        {"environment": "dev"},
        {
            "environment": "prod",
            "manual_approval": True,
            "waves": [
                {"targets": [{"account": PROD_ACCOUNTS[0], "region": "us-east-1"}]},
                {"targets": [{"account": PROD_ACCOUNTS[1], "region": "us-east-1"}]},
            ],
        },
    ],
}


def write_pipeline_home(folder: Path, pipeline: dict | None = None) -> Path:
    """Writes dev.yaml (with the pipeline) and prod.yaml into `folder`; returns the home file's path."""
    data = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    data["pipeline"] = pipeline or PIPELINE
    home = folder / "dev.yaml"
    home.write_text(yaml.safe_dump(data, sort_keys=False))
    shutil.copy(CONFIG_DIR / "prod.yaml", folder / "prod.yaml")
    return home
