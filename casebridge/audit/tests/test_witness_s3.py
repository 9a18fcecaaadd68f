"""Checkpoints are also witnessed in an S3-compatible bucket (moto's server over real HTTP on a
loopback port; boto3 talks to it as to AWS): each copy is locked in a bucket with object lock,
and `audit verify` compares the bucket with the database exactly as it does the folder."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from django.db.models import F

from casebridge.audit import chain, triggers
from casebridge.audit.models import Checkpoint
from casebridge.audit.testing import checkpointed, tamper
from casebridge.transfer.testing import free_port

pytestmark = pytest.mark.django_db


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(moto_endpoint: str, settings: Any) -> str:
    """A fresh bucket with object lock enabled, named as the S3 witness."""
    name = f"witness-{uuid.uuid4().hex[:12]}"
    _client(moto_endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    settings.AUDIT_WITNESS_S3 = f"s3://{name}/site-a"
    settings.AUDIT_WITNESS_S3_ENDPOINT = moto_endpoint
    settings.AUDIT_WITNESS_S3_REGION = "us-east-1"
    return name


def _objects(endpoint: str, name: str) -> dict[str, dict[str, Any]]:
    client = _client(endpoint)
    listed = client.list_objects_v2(Bucket=name, Prefix="site-a/").get("Contents", [])
    return {o["Key"]: client.head_object(Bucket=name, Key=o["Key"]) for o in listed}


def test_each_checkpoint_lands_in_the_bucket_locked_for_six_years(
    bucket: str, moto_endpoint: str, django_capture_on_commit_callbacks: Any
) -> None:
    first = checkpointed(3, django_capture_on_commit_callbacks)
    second = checkpointed(2, django_capture_on_commit_callbacks)

    objects = _objects(moto_endpoint, bucket)
    assert sorted(objects) == [f"site-a/checkpoint-{first:012d}.json", f"site-a/checkpoint-{second:012d}.json"]
    for head in objects.values():
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=6 * 365)
    body = _client(moto_endpoint).get_object(Bucket=bucket, Key=f"site-a/checkpoint-{second:012d}.json")["Body"]
    assert json.loads(body.read()) == chain.signed_head(Checkpoint.objects.get(seq=second))
    assert chain.verify().ok


def test_governance_mode_and_a_bucket_without_object_lock(
    bucket: str, moto_endpoint: str, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AUDIT_WITNESS_S3_LOCK_MODE = "GOVERNANCE"
    checkpointed(2, django_capture_on_commit_callbacks)
    assert [h["ObjectLockMode"] for h in _objects(moto_endpoint, bucket).values()] == ["GOVERNANCE"]

    _client(moto_endpoint).create_bucket(Bucket=f"{bucket}-plain")
    settings.AUDIT_WITNESS_S3 = f"s3://{bucket}-plain/site-a"
    call_command("audit", "witness", stdout=io.StringIO())
    [plain] = _objects(moto_endpoint, f"{bucket}-plain").values()
    assert "ObjectLockMode" not in plain

    settings.AUDIT_WITNESS_S3_LOCK_MODE = "FOREVER"
    result = chain.verify()
    assert not result.ok and "must be COMPLIANCE or GOVERNANCE, not 'FOREVER'" in result.problem


def test_a_rollback_is_caught_by_the_bucket_alone(
    bucket: str, moto_endpoint: str, django_capture_on_commit_callbacks: Any
) -> None:
    checkpointed(4, django_capture_on_commit_callbacks)
    later = checkpointed(3, django_capture_on_commit_callbacks)
    shutil.rmtree(django_settings.AUDIT_WITNESS_DIR)  # the folder was on the same disk as the database
    tamper("DELETE FROM audit_checkpoint WHERE seq > 4")
    tamper("DELETE FROM audit_seal WHERE seq > 4")
    tamper("DELETE FROM audit_event WHERE id NOT IN (SELECT event_id FROM audit_seal)")

    result = chain.verify()

    assert not result.ok and result.bad_seq == later
    assert result.problem.startswith(f"rollback: checkpoint #{later} was witnessed outside the database")
    assert f"(the S3 witness s3://{bucket}/site-a)" in result.problem and "ends at #4" in result.problem


def test_a_checkpoint_changed_or_removed_or_a_planted_copy_is_named_against_the_bucket(
    bucket: str, moto_endpoint: str, django_capture_on_commit_callbacks: Any
) -> None:
    first = checkpointed(3, django_capture_on_commit_callbacks)
    second = checkpointed(2, django_capture_on_commit_callbacks)
    shutil.rmtree(django_settings.AUDIT_WITNESS_DIR)
    label = f"the S3 witness s3://{bucket}/site-a"
    triggers.remove(connection)  # a time the signature does not cover, changed in the database only
    Checkpoint.objects.filter(seq=second).update(created_at=F("created_at") + timedelta(seconds=1))
    assert chain.verify().problem == f"checkpoint #{second} in the database differs from its copy in {label}"

    tamper("DELETE FROM audit_checkpoint WHERE seq = %s", [first])
    assert chain.verify().problem == f"checkpoint #{first} is missing from the database (its copy in {label} exists)"

    planted = {**chain.signed_head(Checkpoint.objects.get(seq=second)), "tree_size": 1, "signature": "AAAA"}
    planted_key = "site-a/checkpoint-000000000001.json"
    _client(moto_endpoint).put_object(Bucket=bucket, Key=planted_key, Body=json.dumps(planted))
    assert chain.verify().problem == f"the copy of checkpoint #1 in {label} is not signed by this log's key"


def test_an_unreachable_bucket_keeps_the_checkpoint_fails_verify_and_is_caught_up(
    bucket: str, moto_endpoint: str, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.AUDIT_WITNESS_S3_ENDPOINT = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    seq = checkpointed(2, django_capture_on_commit_callbacks)
    assert Checkpoint.objects.filter(seq=seq).exists()
    assert (Path(django_settings.AUDIT_WITNESS_DIR) / f"checkpoint-{seq:012d}.json").exists()
    result = chain.verify()
    assert not result.ok and result.problem.startswith(f"the S3 witness s3://{bucket}/site-a cannot be read")

    settings.AUDIT_WITNESS_S3_ENDPOINT = moto_endpoint
    out = io.StringIO()
    call_command("audit", "witness", stdout=out)
    assert out.getvalue() == (
        f"0 witness copies written to the witness folder\n1 witness copy written to the S3 witness s3://{bucket}/site-a\n"
    )
    assert list(_objects(moto_endpoint, bucket)) == [f"site-a/checkpoint-{seq:012d}.json"]
    assert chain.verify().ok
