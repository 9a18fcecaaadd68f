"""Backups into an S3-compatible bucket: `casebridge backup create s3://bucket/prefix`.

The same set as for a folder, as objects:

    <prefix>/blobs/<name>                  ciphertext; immutable by name, so uploaded once (a HEAD
                                           first: one already there with the same size is skipped)
    <prefix>/sets/<set id>/<file>          the database copy, manifest.json, then manifest.sig.json
                                           last: a set without its signature is incomplete

When the bucket has object lock enabled, every object written gets a retention of
BACKUP_S3_LOCK_DAYS in BACKUP_S3_LOCK_MODE (COMPLIANCE: no one, not even the account's root, can
delete or overwrite it before then; GOVERNANCE: only with a special permission); a blob shared
with a new set has its retention extended to the new set's. Endpoint and credentials come from
settings/the environment (CASEBRIDGE_BACKUP_S3_ENDPOINT, AWS_ACCESS_KEY_ID, ...), never the
destination string. Restore and restore tests download the set into a scratch folder and restore
from it as from a folder, where every blob is checked against the signed manifest's SHA-256: an
object changed in the bucket is named as damaged.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from casebridge.retention import backup
from casebridge.retention.backup import BackupError, Progress, _quiet

PREFIX = "s3://"
SIGNATURE = "manifest.sig.json"


def is_s3(dest: str) -> bool:
    return dest.startswith(PREFIX)


@dataclass
class Bucket:
    bucket: str
    prefix: str
    client: Any

    @classmethod
    def parse(cls, dest: str, *, endpoint: str | None = None, region: str | None = None) -> Bucket:
        """`s3://bucket/prefix`, reached at `endpoint` in `region` (default: the backup settings;
        the audit witness bucket passes its own)."""
        import boto3
        from botocore.config import Config

        bucket, _, prefix = dest[len(PREFIX) :].partition("/")
        if not bucket:
            raise BackupError("s3:// needs a bucket, e.g. s3://casebridge-backups/site-a")
        client = boto3.client(
            "s3",
            endpoint_url=(settings.BACKUP_S3_ENDPOINT if endpoint is None else endpoint) or None,
            region_name=(settings.BACKUP_S3_REGION if region is None else region) or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        return cls(bucket, prefix.strip("/"), client)

    @property
    def label(self) -> str:
        return f"{PREFIX}{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def lock_enabled(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            config = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError:
            return False  # no lock configuration: a bucket made without object lock
        return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def sets(self) -> list[str]:
        """Complete sets (their signature uploaded), oldest first."""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key("sets") + "/", Delimiter="/"
        )
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                set_id = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                if self.head(self.key("sets", set_id, SIGNATURE)) is not None:
                    found.append(set_id)
        return sorted(found)


@dataclass
class S3Result:
    made: backup.CreatedSet
    uploaded: int
    uploaded_bytes: int
    locked_until: datetime | None


def _lock_args(until: datetime | None) -> dict[str, Any]:
    if until is None:
        return {}
    return {"ObjectLockMode": settings.BACKUP_S3_LOCK_MODE, "ObjectLockRetainUntilDate": until}


def create(dest: str, *, progress: Progress = _quiet) -> S3Result:
    """Write a set into the bucket: new blobs only, then the set's files, the signature last."""
    from botocore.exceptions import BotoCoreError, ClientError

    target = Bucket.parse(dest)
    try:
        made = backup.spooled(target.label, progress)
        manifest = json.loads((made.path / "manifest.json").read_text())
        until = None
        if settings.BACKUP_S3_LOCK_DAYS > 0 and target.lock_enabled():
            until = (datetime.now(UTC) + timedelta(days=settings.BACKUP_S3_LOCK_DAYS)).replace(microsecond=0)
        blobs = made.path.parent.parent / "blobs"
        uploaded = uploaded_bytes = done = 0
        total = sum(size for _name, size, _digest in manifest["blobs"])
        for name, size, digest in manifest["blobs"]:
            key = target.key("blobs", name)
            there = target.head(key)
            if there is None or int(there["ContentLength"]) != size:
                with (blobs / name).open("rb") as body:
                    target.client.put_object(
                        Bucket=target.bucket, Key=key, Body=body, Metadata={"sha256": digest}, **_lock_args(until)
                    )
                uploaded, uploaded_bytes = uploaded + 1, uploaded_bytes + size
            elif until is not None and (there.get("ObjectLockRetainUntilDate") or until) < until - timedelta(days=1):
                target.client.put_object_retention(  # a blob the new set shares stays locked as long as it
                    Bucket=target.bucket,
                    Key=key,
                    Retention={"Mode": settings.BACKUP_S3_LOCK_MODE, "RetainUntilDate": until},
                )
            done += size
            progress("upload", done, total)
        files = sorted((p for p in made.path.iterdir() if p.name != SIGNATURE), key=lambda p: p.name == "manifest.json")
        for path in [*files, made.path / SIGNATURE]:
            with path.open("rb") as body:
                target.client.put_object(
                    Bucket=target.bucket, Key=target.key("sets", made.set_id, path.name), Body=body, **_lock_args(until)
                )
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"the bucket {target.label} refused the backup: {exc}") from exc
    return S3Result(made, uploaded, uploaded_bytes, until)


def set_ids(dest: str) -> list[str]:
    return Bucket.parse(dest).sets()


@contextlib.contextmanager
def materialized(dest: str, set_id: str | None = None) -> Iterator[tuple[Path, str]]:
    """The set (default: the newest) downloaded as a backup folder into a scratch place under
    CASEBRIDGE_HOME, removed afterwards. Blobs are checked by the restore, against the manifest."""
    from botocore.exceptions import BotoCoreError, ClientError

    source = Bucket.parse(dest)
    known = source.sets()
    if not known:
        raise BackupError(f"{source.label} holds no complete backup set")
    chosen = set_id or known[-1]
    if chosen not in known:
        raise BackupError(f"{source.label} has no set {chosen!r} (it has: {', '.join(known)})")
    Path(settings.HOME).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="s3-restore-", dir=settings.HOME))
    try:
        folder = scratch / "sets" / chosen
        folder.mkdir(parents=True)
        listed = source.client.list_objects_v2(Bucket=source.bucket, Prefix=source.key("sets", chosen) + "/")
        for item in listed.get("Contents", []):
            source.client.download_file(source.bucket, item["Key"], str(folder / item["Key"].rsplit("/", 1)[-1]))
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, _size, _digest in manifest.get("blobs", []):
            path = scratch / "blobs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                source.client.download_file(source.bucket, source.key("blobs", name), str(path))
            except ClientError:
                continue  # missing: the restore names it and its cases
        yield scratch, chosen
    except (BotoCoreError, ClientError) as exc:
        raise BackupError(f"cannot read {source.label}: {exc}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
