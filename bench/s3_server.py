"""An S3 service on loopback for the soak and the tests: moto's standalone server (`python -m
moto.server`) in a process of its own, on a free port, holding its buckets in memory.

    server = start_s3_server()
    create_bucket(server.endpoint_url, "madang")
    ...  # STORAGE_BACKEND=s3, S3_ENDPOINT_URL=server.endpoint_url, S3_BUCKET=madang, server.settings
    server.stop()

moto answers any credentials; `settings()` gives the S3_* settings of a bucket on it. It lives in
bench/ because bench must not import the tests, and the tests may import bench.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY_ID = "madang-test-key"
SECRET_ACCESS_KEY = "madang-test-secret"  # moto takes any
READY_SECONDS = 30
STOP_SECONDS = 10


@dataclass
class S3Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def settings(self, bucket: str, *, prefix: str = "") -> dict[str, str]:
        """The environment variables of a backend on this server's `bucket`."""
        return {
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_BUCKET": bucket,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "S3_PREFIX": prefix,
            "S3_FORCE_PATH_STYLE": "true",
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def start_s3_server(log: Path | None = None) -> S3Server:
    """Starts the server and waits until it answers; its output goes to `log` (or nowhere)."""
    port = _free_port()
    command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    out = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    server = S3Server(process, port)
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1):
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto's S3 server did not start on port {port}") from None
            time.sleep(0.1)


def create_bucket(endpoint_url: str, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_bucket(Bucket=bucket)
