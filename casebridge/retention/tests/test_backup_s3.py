"""S3-compatible buckets as backup destinations (`s3://bucket/prefix`), against moto's server mode
on a loopback port (real HTTP; boto3 talks to it as to AWS), driven with `casebridge backup`
commands in their own processes: a set round-trips through a bucket; a second backup uploads only
new blobs; objects in a bucket with object lock get a retention; an object changed in the bucket
is named by the restore test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from casebridge.retention.tests.test_backup_drills import PASSPHRASE, Installation, _installation
from casebridge.transfer.testing import free_port

# The installations driven here have SQLite databases of their own whatever the suite runs on.
pytestmark = pytest.mark.sqlite_pass_only

ADD_A_FILE = """
import os, struct
from casebridge.accounts.models import User
from casebridge.orgs.models import Organization
from casebridge.vault import api as vault
org = Organization.objects.filter(kind="practice").first()
user = User.objects.filter(memberships__organization=org).first()
head = b"new scan".ljust(80, b" ") + struct.pack("<I", 100)
vault.put_stream(organization=org, actor=user, chunks=[head, os.urandom(5000)], length=5084)
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's server mode on a free loopback port: real HTTP; the installations' boto3 talks to it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Iterator[tuple[Installation, Path, Any]]:
    root = tmp_path_factory.mktemp("s3")
    (root / "pass").write_text(PASSPHRASE)
    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    home = _installation(root / "home", CASEBRIDGE_BACKUP_S3_ENDPOINT=s3_endpoint, **aws)
    home.run("migrate", "--verbosity", "0")
    home.run("demo")
    home.run("keys", "export", str(root / "keys.json"), "--passphrase-file", str(root / "pass"))
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    client.create_bucket(Bucket="plain")
    yield home, root, client


def _keys(root: Path) -> tuple[str, ...]:
    return ("--keys", str(root / "keys.json"), "--passphrase-file", str(root / "pass"))


def test_a_set_round_trips_through_a_locked_bucket_and_every_object_is_locked(
    site: tuple[Installation, Path, Any], tmp_path: Path
) -> None:
    home, root, client = site
    made = home.run("backup", "create", "s3://locked/site-a").stdout

    assert "locked until" in made
    listed = home.run("backup", "list", "s3://locked/site-a").stdout.split()
    assert len(listed) == 1 and listed[0] in made
    objects = client.list_objects_v2(Bucket="locked", Prefix="site-a/")["Contents"]
    assert any(o["Key"].endswith("manifest.sig.json") for o in objects)
    for item in objects:  # (HEAD: moto 5.2.5's GetObjectRetention answers 500)
        head = client.head_object(Bucket="locked", Key=item["Key"])
        assert head["ObjectLockMode"] == "COMPLIANCE", item["Key"]
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=34)

    target = _installation(
        tmp_path / "new", **{k: v for k, v in home.env.items() if k.startswith(("AWS_", "CASEBRIDGE_BACKUP_S3"))}
    )
    done = target.run("backup", "restore", "s3://locked/site-a", *_keys(root), "--json")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    files = home.query("SELECT count(*) FROM vault_objectversion WHERE wrapped_dek IS NOT NULL")[0][0]
    assert report["ok"] and report["audit_ok"] and report["files_checked"] == files > 10
    assert not list(target.home.glob("s3-restore-*"))


def test_a_second_backup_uploads_only_the_new_blobs_and_a_plain_bucket_gets_no_lock(
    site: tuple[Installation, Path, Any],
) -> None:
    home, _root, client = site
    first = home.run("backup", "create", "s3://plain/inc").stdout
    assert "no object lock" in first
    home.run("shell", "-c", ADD_A_FILE)

    second = home.run("backup", "create", "s3://plain/inc").stdout

    assert ", 1 uploaded now" in second, second
    assert len(home.run("backup", "list", "s3://plain/inc").stdout.split()) == 2
    blob = client.list_objects_v2(Bucket="plain", Prefix="inc/blobs/")["Contents"][0]["Key"]
    assert "ObjectLockMode" not in client.head_object(Bucket="plain", Key=blob)


def test_an_object_changed_in_the_bucket_fails_the_restore_test_which_names_it(
    site: tuple[Installation, Path, Any],
) -> None:
    home, root, client = site
    home.run("backup", "create", "s3://plain/tamper")
    blob = home.query("SELECT blob_name FROM vault_objectversion WHERE wrapped_dek IS NOT NULL LIMIT 1")[0][0]
    key = f"tamper/blobs/{blob}"
    data = bytearray(client.get_object(Bucket="plain", Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket="plain", Key=key, Body=bytes(data))

    failed = home.run("backup", "verify", "s3://plain/tamper", *_keys(root), check=False)

    assert failed.returncode != 0 and "damaged" in failed.stderr + failed.stdout
    runs = home.query("SELECT ok, destination FROM retention_backuprun WHERE kind = 'restore_test' ORDER BY started_at")
    assert runs[-1] == (0, "s3://plain/tamper")
