"""An S3 API on loopback for the tests: moto's standalone server, run as a subprocess.

moto is an emulator of the S3 API (it is not AWS, and not MinIO): it answers the same HTTP
requests an S3 service does, which is what Madang's S3 backend speaks (services/storage.py).
It is used because no real S3 can run here; the tests talk to it over HTTP exactly as the app
would talk to AWS S3, MinIO, Ceph RGW or R2 (signed requests, multipart uploads, ranges,
presigned URLs), so a bug in how we use the API shows here too.

The API, for any test module:

- `s3_server` (session fixture): the running server, an `S3Server` (started once per session
  on a free loopback port, stopped at the end). Skips the test when moto is not installed.
- `S3Server.new_bucket()`: a fresh, empty bucket (a unique name); `S3Server.client()`: a boto3
  client for it; `S3Server.settings(bucket, prefix)`: the settings that point Madang at it
  (STORAGE_BACKEND=s3 and the S3_* ones), as a dict of name -> value (str for the environment
  of a subprocess, or monkeypatch them onto `config.settings`).
- `use_s3(monkeypatch, s3_server, prefix=...)`: points this process's settings at a new bucket
  of the server and answers the S3Storage they open (services.storage.get_storage("s3")).
- `in_progress_uploads(client, bucket)`: the multipart uploads started and neither completed
  nor aborted (what an aborted upload must not leave behind).
"""

import secrets
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench import s3_server as moto
from config import settings
from services.storage import S3Storage, get_storage

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client


@dataclass
class S3Server(moto.S3Server):
    """bench/s3_server.py's server (the soak starts the same one), with a client and buckets."""

    _client: "S3Client | None" = field(default=None, repr=False)

    def client(self) -> "S3Client":
        """One client for the session (building one loads botocore's model: a tenth of a second)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=moto.REGION,
                aws_access_key_id=moto.ACCESS_KEY_ID,
                aws_secret_access_key=moto.SECRET_ACCESS_KEY,
                config=Config(s3={"addressing_style": "path"}),
            )
        return self._client

    def new_bucket(self) -> str:
        bucket = f"madang-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket


def free_port() -> int:
    """A loopback port nothing listens on (an endpoint that refuses connections, for one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_s3_server() -> S3Server:
    """moto's server on a free loopback port, once it answers; its output in a file of its own."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (requirements-dev.txt)")
    log = Path(tempfile.mkstemp(prefix="madang-moto-", suffix=".log")[1])
    started = moto.start_s3_server(log=log)
    return S3Server(started.process, started.port)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    server.stop()


def use_s3(monkeypatch: pytest.MonkeyPatch, server: S3Server, *, prefix: str = "madang/") -> S3Storage:
    """This process's settings pointed at a new bucket (undone after the test); its storage."""
    values = server.settings(server.new_bucket(), prefix=prefix)
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value == "true" if name == "S3_FORCE_PATH_STYLE" else value)
    storage = get_storage("s3")
    assert isinstance(storage, S3Storage)
    return storage


def in_progress_uploads(client: "S3Client", bucket: str) -> list[str]:
    return [upload["Key"] for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
