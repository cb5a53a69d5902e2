"""A moto S3 server in a process of its own, for the benchmarks: what it holds does not count against the
process being measured."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import requests

CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except requests.ConnectionError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("moto_server did not start")


def s3_client(port: int) -> Any:
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1", **CREDENTIALS)


@contextmanager
def moto_s3() -> Iterator[tuple[Any, int]]:
    """A moto server for the length of the block: an S3 client for it, and its port."""
    port = free_port()
    server = start_moto_server(port)
    try:
        yield s3_client(port), port
    finally:
        server.terminate()
        server.wait(timeout=30)
