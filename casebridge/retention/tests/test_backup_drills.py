"""Disaster drills, run as an operator runs them: `casebridge` commands in their own processes,
each installation in its own CASEBRIDGE_HOME. A backup restores into an empty installation with
every file and a verified audit chain; keys never travel with it; tampering, loss and damage are
named; an installation in use is never overwritten by accident."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from casebridge.core.testing import require

PASSPHRASE = "correct horse battery staple"


@dataclass
class Installation:
    home: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "casebridge.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"casebridge {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def query(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.home / "casebridge.sqlite3") as conn:
            return list(conn.execute(sql))


def _installation(home: Path, **extra: str) -> Installation:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASEBRIDGE_", "DATABASE_URL"))}
    env.update({"CASEBRIDGE_HOME": str(home), "DJANGO_SETTINGS_MODULE": "casebridge.settings", **extra})
    return Installation(home, env)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Installation, Path, Path, Path]]:
    """A demo installation (organizations, people, a dozen cases with scans, CBCT and photos) with
    one API token, its backup in a folder, and its keys exported apart."""
    root = tmp_path_factory.mktemp("drill")
    site = _installation(root / "home")
    site.run("migrate", "--verbosity", "0")
    site.run("demo")
    slug = site.query("SELECT slug FROM orgs_organization WHERE kind = 'practice'")[0][0]
    site.run("serviceaccount", "create", "--org", slug, "--name", "pms", "--role", "staff", "--scope", "cases:read")
    (root / "pass").write_text(PASSPHRASE)
    site.run("keys", "export", str(root / "keys.json"), "--passphrase-file", str(root / "pass"))
    site.run("backup", "create", str(root / "backup"))
    yield site, root / "backup", root / "keys.json", root / "pass"


def _restore(target: Installation, backup: Path, keys: Path, passphrase: Path, *extra: str, check: bool = False):
    return target.run(
        "backup", "restore", str(backup), "--keys", str(keys), "--passphrase-file", str(passphrase), *extra, check=check
    )


def _copy(backup: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "backup-copy"
    shutil.copytree(backup, copy)
    return copy


def test_a_backup_restores_into_an_empty_installation_with_every_file_and_a_verified_audit_chain(
    source: tuple[Installation, Path, Path, Path], tmp_path: Path
) -> None:
    site, backup, keys, passphrase = source
    files = site.query("SELECT count(*) FROM vault_objectversion WHERE wrapped_dek IS NOT NULL")[0][0]
    target = _installation(tmp_path / "new-home")

    done = _restore(target, backup, keys, passphrase, "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["audit_ok"] and report["files"] == files == report["files_checked"] > 10
    # The token live in the backup does not come back to life silently: it is revoked.
    assert report["tokens_revoked"] == 1
    assert target.query("SELECT count(*) FROM accounts_apitoken WHERE revoked_at IS NULL") == [(0,)]
    assert target.query("SELECT count(*) FROM audit_event WHERE action = 'backup.restored'") == [(1,)]
    # The restored installation works as itself: its own audit check passes with the restored keys.
    assert "audit chain intact" in target.run("audit", "verify").stdout


def test_keys_never_travel_with_a_backup(source: tuple[Installation, Path, Path, Path]) -> None:
    site, backup, _keys, _passphrase = source
    secrets = [
        json.loads((site.home / "keys" / "vault-kek.json").read_text())["versions"][0]["material"],
        json.loads((site.home / "keys" / "keyring.json").read_text())["secrets"][0]["material"],
        (site.home / "secret_key").read_text().strip(),
    ]
    for path in backup.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in secrets), path


def test_a_second_backup_copies_only_what_changed(source: tuple[Installation, Path, Path, Path]) -> None:
    site, backup, _keys, _passphrase = source
    again = site.run("backup", "create", str(backup)).stdout
    assert ", 0 copied now (0.0 MB" in again
    assert len(site.run("backup", "list", str(backup)).stdout.split()) >= 2


def test_restoring_onto_an_installation_in_use_is_refused_and_changes_nothing(
    source: tuple[Installation, Path, Path, Path],
) -> None:
    site, backup, keys, passphrase = source
    before = (site.home / "casebridge.sqlite3").stat().st_mtime_ns

    done = _restore(site, backup, keys, passphrase)

    assert done.returncode != 0 and "not empty" in done.stderr and "--force" in done.stderr
    assert (site.home / "casebridge.sqlite3").stat().st_mtime_ns == before


def test_a_wrong_passphrase_opens_nothing_and_restores_nothing(
    source: tuple[Installation, Path, Path, Path], tmp_path: Path
) -> None:
    _site, backup, keys, _passphrase = source
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all")
    target = _installation(tmp_path / "home")

    done = _restore(target, backup, keys, wrong)

    assert done.returncode != 0 and "wrong passphrase" in done.stderr
    assert not (target.home / "casebridge.sqlite3").exists() and not (target.home / "blobs").exists()


def test_an_altered_manifest_is_refused(source: tuple[Installation, Path, Path, Path], tmp_path: Path) -> None:
    _site, backup, keys, passphrase = source
    copy = _copy(backup, tmp_path)
    newest = sorted(p for p in (copy / "sets").iterdir() if not p.name.startswith("."))[-1]
    manifest = newest / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"events": ', '"events": 1'))
    target = _installation(tmp_path / "home")

    done = _restore(target, copy, keys, passphrase)

    assert done.returncode != 0 and "does not match its signature" in done.stderr
    assert not (target.home / "blobs").exists()


def test_a_lost_blob_is_named_with_the_cases_it_belongs_to(
    source: tuple[Installation, Path, Path, Path], tmp_path: Path
) -> None:
    site, backup, keys, passphrase = source
    copy = _copy(backup, tmp_path)
    blob, number = site.query(
        "SELECT v.blob_name, c.number FROM vault_objectversion v "
        "JOIN cases_attachment a ON a.stored_object_id = v.stored_object_id "
        "JOIN cases_case c ON c.id = a.case_id WHERE v.wrapped_dek IS NOT NULL LIMIT 1"
    )[0]
    (copy / "blobs" / blob).unlink()
    target = _installation(tmp_path / "home")

    done = _restore(target, copy, keys, passphrase)

    assert done.returncode != 0 and f"missing from the backup: {blob}" in done.stderr
    assert "is lost (cases: " in done.stderr and number in done.stderr


def test_a_damaged_blob_is_not_installed_and_is_reported(
    source: tuple[Installation, Path, Path, Path], tmp_path: Path
) -> None:
    site, backup, keys, passphrase = source
    copy = _copy(backup, tmp_path)
    blob = site.query("SELECT blob_name FROM vault_objectversion WHERE wrapped_dek IS NOT NULL LIMIT 1")[0][0]
    damaged = copy / "blobs" / blob
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    damaged.write_bytes(bytes(data))
    target = _installation(tmp_path / "home")

    done = _restore(target, copy, keys, passphrase)

    assert done.returncode != 0 and f"damaged in the backup (hash differs): {blob}" in done.stderr
    assert not (target.home / "blobs" / blob).exists()


def test_a_restore_test_records_its_result_rto_and_rpo_and_a_failed_one_says_why(
    source: tuple[Installation, Path, Path, Path], tmp_path: Path
) -> None:
    site, backup, keys, passphrase = source
    passed = site.run("backup", "verify", str(backup), "--keys", str(keys), "--passphrase-file", str(passphrase))
    assert "PASSED" in passed.stdout and "(RTO)" in passed.stdout

    copy = _copy(backup, tmp_path)
    blob = site.query("SELECT blob_name FROM vault_objectversion WHERE wrapped_dek IS NOT NULL LIMIT 1")[0][0]
    (copy / "blobs" / blob).unlink()
    failed = site.run(
        "backup", "verify", str(copy), "--keys", str(keys), "--passphrase-file", str(passphrase), check=False
    )

    assert failed.returncode != 0 and "missing from the backup" in failed.stderr
    runs = site.query(
        "SELECT ok, rto_seconds, rpo_seconds, problem FROM retention_backuprun "
        "WHERE kind = 'restore_test' ORDER BY started_at"
    )
    assert [r[0] for r in runs[-2:]] == [1, 0]
    assert all(r[1] > 0 and r[2] is not None and r[2] >= 0 for r in runs[-2:])
    assert "missing" in runs[-1][3]
    actions = [a for (a,) in site.query("SELECT action FROM audit_event WHERE action LIKE 'backup.%'")]
    assert "backup.verified" in actions and "backup.verify_failed" in actions
    assert not list(site.home.glob("restore-test-*"))  # the scratch installation is gone


@pytest.mark.postgres_only  # pg_dump and pg_restore
def test_a_postgresql_installation_restores_into_a_fresh_database(tmp_path: Path) -> None:
    import psycopg

    url = os.environ["DATABASE_URL"]
    server = url.rsplit("/", 1)[0]
    names = ("cb_drill_source", "cb_drill_target")
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        site = _installation(tmp_path / "home", DATABASE_URL=f"{server}/{names[0]}")
        site.run("migrate", "--verbosity", "0")
        site.run("demo")
        (tmp_path / "pass").write_text(PASSPHRASE)
        site.run("keys", "export", str(tmp_path / "keys.json"), "--passphrase-file", str(tmp_path / "pass"))
        site.run("backup", "create", str(tmp_path / "backup"))
        assert list((tmp_path / "backup" / "sets").glob("*/database.pgdump"))
        target = _installation(tmp_path / "new-home", DATABASE_URL=f"{server}/{names[1]}")

        done = _restore(target, tmp_path / "backup", tmp_path / "keys.json", tmp_path / "pass", "--json")

        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["ok"] and report["audit_ok"] and report["files_checked"] > 10
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- drills on an installation of their own (they change keys and destroy files) -------------
HALF_ROTATED = """
from casebridge.vault.config import key_provider
from casebridge.vault.keys.hierarchy import rewrap_org_key
from casebridge.vault.keys import WrappedKey
from casebridge.vault.models import OrgKey
provider = key_provider()
provider.rotate()
row = OrgKey.objects.filter(destroyed_at__isnull=True).order_by("pk").first()
wrapped = rewrap_org_key(provider, WrappedKey.from_json(row.wrapped), row.organization_id, row.version)
OrgKey.objects.filter(pk=row.pk).update(wrapped=wrapped.to_json(), kek_version=wrapped.version)
print(OrgKey.objects.values("kek_version").distinct().count())
"""

SHRED_ONE = """
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject
victim = StoredObject.objects.get(pk="{pk}")
vault.destroy_object(victim, actor=None, reason="retention drill")
"""


HALF_AN_UPLOAD = """
import os, struct
from casebridge.accounts.models import User
from casebridge.orgs.models import Organization
from casebridge.vault import uploads
org = Organization.objects.filter(kind="practice").order_by("pk").first()
user = User.objects.filter(memberships__organization=org).order_by("pk").first()
triangles = 40000
content = b"half upload".ljust(80, b" ") + struct.pack("<I", triangles) + os.urandom(50 * triangles)
upload = uploads.create_upload(organization=org, actor=user, length=len(content))
half, sent = content[: len(content) // 2], 0
def body(view):
    global sent
    piece = half[sent : sent + len(view)]
    view[: len(piece)] = piece
    sent += len(piece)
    return len(piece)
def never(_):
    raise AssertionError("half an upload never finishes")
uploads.append(upload, actor=user, client_offset=0, body=body, content_length=len(half), add_version=never)
upload.refresh_from_db()
print(upload.pk.hex, upload.offset)
"""


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    root = tmp_path_factory.mktemp("fresh")
    (root / "pass").write_text(PASSPHRASE)
    (root / "restic-pass").write_text("restic password for the drills")
    site = _installation(root / "home", CASEBRIDGE_RESTIC_PASSWORD_FILE=str(root / "restic-pass"))
    site.run("migrate", "--verbosity", "0")
    site.run("demo")
    return site


def test_a_backup_taken_in_the_middle_of_a_key_rotation_restores_with_every_file(
    fresh: Installation, tmp_path: Path
) -> None:
    site = fresh
    # The rotation is interrupted after one organization key: keys under two KEK versions.
    assert site.run("shell", "-c", HALF_ROTATED).stdout.strip().splitlines()[-1] == "2"
    site.run("backup", "create", str(tmp_path / "backup"))
    site.run("keys", "rotate")  # resumes and finishes after the backup
    passphrase = site.home.parent / "pass"
    site.run("keys", "export", str(tmp_path / "keys.json"), "--passphrase-file", str(passphrase))
    target = _installation(tmp_path / "new-home")

    done = _restore(target, tmp_path / "backup", tmp_path / "keys.json", passphrase, "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    files = site.query("SELECT count(*) FROM vault_objectversion WHERE wrapped_dek IS NOT NULL")[0][0]
    assert report["ok"] and report["files_checked"] == files > 10 and not report["files_failed"]


def test_a_shredded_file_is_gone_from_every_backup_once_the_backup_retention_window_has_passed(
    fresh: Installation, tmp_path: Path
) -> None:
    """Wrapped keys expire from backup sets by the sets' own expiry: `restic forget --prune` with
    the retention settings drops every snapshot older than the window (here: all but today's
    newest), so no set that still holds the shredded file's wrapped key survives it."""
    require(shutil.which("restic") is not None, "restic", "apt-get install restic")
    site = fresh
    repo = f"restic:{tmp_path / 'repo'}"
    keep_all = Installation(site.home, {**site.env, "CASEBRIDGE_RESTIC_KEEP_DAILY": "0"})
    keep_all.env["CASEBRIDGE_RESTIC_KEEP_WEEKLY"] = "0"
    before = keep_all.run("backup", "create", repo).stdout.split()[2]
    victim, blob = site.query(
        "SELECT stored_object_id, blob_name FROM vault_objectversion WHERE wrapped_dek IS NOT NULL LIMIT 1"
    )[0]
    site.run("shell", "-c", SHRED_ONE.format(pk=victim))
    # Inside the window the earlier set still holds the file's wrapped key: it stays recoverable.
    keep_all.run("backup", "create", repo)
    assert before in site.run("backup", "list", repo).stdout

    after = site.run("backup", "create", repo).stdout  # the window (default 7 daily, 5 weekly) applies

    assert "forgotten and pruned" in after
    listed = site.run("backup", "list", repo).stdout.split()
    assert before not in listed and len(listed) == 1
    passphrase = site.home.parent / "pass"
    site.run("keys", "export", str(tmp_path / "keys.json"), "--passphrase-file", str(passphrase))
    target = _installation(
        tmp_path / "new-home", CASEBRIDGE_RESTIC_PASSWORD_FILE=site.env["CASEBRIDGE_RESTIC_PASSWORD_FILE"]
    )
    done = _restore(target, Path(repo), tmp_path / "keys.json", passphrase, "--json")
    assert done.returncode == 0, done.stderr
    assert target.query(f"SELECT wrapped_dek FROM vault_objectversion WHERE blob_name = '{blob}'") == [(None,)]
    assert not (target.home / "blobs").exists() or not any(
        blob.split("/")[-1] in p.name for p in (target.home / "blobs").rglob("*")
    )


def test_a_backup_taken_while_an_upload_is_half_done_restores_consistently(fresh: Installation, tmp_path: Path) -> None:
    """Only finished files are in a set: the half-done upload's row does not come back promising
    bytes nothing backs (its client's HEAD gets 404 and it starts again); every file is there."""
    site = fresh
    upload_id, offset = site.run("shell", "-c", HALF_AN_UPLOAD).stdout.split()[-2:]
    assert int(offset) > 0 and site.query(f"SELECT count(*) FROM vault_upload WHERE id = '{upload_id}'") == [(1,)]
    site.run("backup", "create", str(tmp_path / "backup"))
    passphrase = site.home.parent / "pass"
    site.run("keys", "export", str(tmp_path / "keys.json"), "--passphrase-file", str(passphrase))
    target = _installation(tmp_path / "new-home")

    done = _restore(target, tmp_path / "backup", tmp_path / "keys.json", passphrase, "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    files = site.query("SELECT count(*) FROM vault_objectversion WHERE wrapped_dek IS NOT NULL")[0][0]
    assert report["ok"] and report["files_checked"] == files and report["uploads_dropped"] == 1
    assert target.query("SELECT count(*) FROM vault_upload WHERE completed_at IS NULL") == [(0,)]


def test_pruning_a_backup_folder_removes_a_shredded_files_key_and_ciphertext_from_it(
    fresh: Installation, tmp_path: Path
) -> None:
    site = fresh
    backup = tmp_path / "backup"
    site.run("backup", "create", str(backup))
    victim, blob = site.query(
        "SELECT stored_object_id, blob_name FROM vault_objectversion WHERE wrapped_dek IS NOT NULL LIMIT 1"
    )[0]
    site.run("shell", "-c", SHRED_ONE.format(pk=victim))
    site.run("backup", "create", str(backup))
    older = site.run("backup", "list", str(backup)).stdout.split()[0]
    assert (backup / "blobs" / blob).exists()  # inside the window the earlier set can still bring it back

    pruned = site.run("backup", "prune", str(backup), "--older-than-days", "0").stdout

    assert "removed 1 set(s)" in pruned and "1 unused file(s)" in pruned
    assert older not in site.run("backup", "list", str(backup)).stdout
    assert not (backup / "blobs" / blob).exists() and not (backup / "blobs" / f"{blob}.sha256").exists()
    newest = next((backup / "sets").iterdir())
    with sqlite3.connect(newest / "database.sqlite3") as conn:
        assert list(conn.execute("SELECT wrapped_dek FROM vault_objectversion WHERE blob_name = ?", (blob,))) == [
            (None,)
        ]
    assert ("backup.pruned",) in site.query("SELECT action FROM audit_event WHERE action = 'backup.pruned'")
