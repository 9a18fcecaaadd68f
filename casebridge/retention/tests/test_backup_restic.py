"""restic repositories as backup destinations (`restic:<repository>`), driven as an operator drives
them: `casebridge backup create|list|restore|verify restic:...` in their own processes. The same
backup set lands in an encrypted, deduplicated restic repository; a second backup adds only what
changed; a restore and a restore test work from it; `restic check` catches a damaged repository;
the repository's password never shows; `forget --prune` applies the retention settings."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.core.testing import require
from casebridge.retention.tests.test_backup_drills import PASSPHRASE, Installation, _installation

# The installations driven here have SQLite databases of their own whatever the suite runs on:
# the PostgreSQL pass would repeat the same two minutes.
pytestmark = pytest.mark.sqlite_pass_only
RESTIC_PASSWORD = "restic repository password 8c1f"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Installation, Path]]:
    require(shutil.which("restic") is not None, "restic", "apt-get install restic")
    root = tmp_path_factory.mktemp("restic")
    (root / "restic-pass").write_text(RESTIC_PASSWORD)
    (root / "pass").write_text(PASSPHRASE)
    home = _installation(root / "home", CASEBRIDGE_RESTIC_PASSWORD_FILE=str(root / "restic-pass"))
    home.run("migrate", "--verbosity", "0")
    home.run("demo")
    home.run("keys", "export", str(root / "keys.json"), "--passphrase-file", str(root / "pass"))
    yield home, root


def _restic(root: Path, repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"RESTIC_PASSWORD_FILE": str(root / "restic-pass"), "RESTIC_REPOSITORY": str(repo), "HOME": str(root)}
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True, check=False, timeout=120)


def test_a_backup_into_restic_restores_into_an_empty_installation_and_the_second_adds_only_what_changed(
    site: tuple[Installation, Path], tmp_path: Path
) -> None:
    home, root = site
    repo = tmp_path / "repo"

    first = home.run("backup", "create", f"restic:{repo}").stdout
    second = home.run("backup", "create", f"restic:{repo}").stdout

    assert "snapshot" in first and (repo / "config").exists()
    # The blobs are unchanged: only the new set's database copy and manifest are new to restic.
    assert ", 3 new to restic," in second, second
    assert not any(RESTIC_PASSWORD.encode() in p.read_bytes() for p in repo.rglob("*") if p.is_file())
    snapshots = json.loads(_restic(root, repo, "snapshots", "--json").stdout)
    assert snapshots and all("casebridge" in s["tags"] for s in snapshots)
    listed = home.run("backup", "list", f"restic:{repo}").stdout.split()
    assert listed and listed[-1] in second

    target = _installation(tmp_path / "new-home", CASEBRIDGE_RESTIC_PASSWORD_FILE=str(root / "restic-pass"))
    keys = ("--keys", str(root / "keys.json"), "--passphrase-file", str(root / "pass"))
    done = target.run("backup", "restore", f"restic:{repo}", *keys, "--json")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    files = home.query("SELECT count(*) FROM vault_objectversion WHERE wrapped_dek IS NOT NULL")[0][0]
    assert report["ok"] and report["audit_ok"] and report["files_checked"] == files > 10
    assert not list(target.home.glob("restic-restore-*"))  # the scratch copy of the snapshot is gone


def test_the_repository_password_comes_from_a_file_and_never_shows(
    site: tuple[Installation, Path], tmp_path: Path
) -> None:
    home, _root = site
    repo = tmp_path / "repo"
    done = home.run("backup", "create", f"restic:{repo}")
    assert RESTIC_PASSWORD not in done.stdout + done.stderr
    rows = home.query("SELECT destination, problem FROM retention_backuprun") + home.query(
        "SELECT details FROM audit_event WHERE action LIKE 'backup.%'"
    )
    assert RESTIC_PASSWORD not in json.dumps(rows, default=str)

    without = _installation(tmp_path / "other")
    without.run("migrate", "--verbosity", "0")
    refused = without.run("backup", "create", f"restic:{repo}", check=False)
    assert refused.returncode != 0 and "CASEBRIDGE_RESTIC_PASSWORD_FILE" in refused.stderr

    wrong = tmp_path / "wrong"
    wrong.write_text("not the password")
    other = _installation(tmp_path / "other", CASEBRIDGE_RESTIC_PASSWORD_FILE=str(wrong))
    refused = other.run("backup", "create", f"restic:{repo}", check=False)
    assert refused.returncode != 0 and "restic" in refused.stderr and "not the password" not in refused.stderr


def test_a_restore_test_checks_the_repository_and_a_damaged_one_fails_and_is_recorded(
    site: tuple[Installation, Path], tmp_path: Path
) -> None:
    home, root = site
    repo = tmp_path / "repo"
    home.run("backup", "create", f"restic:{repo}")
    verify = ("backup", "verify", f"restic:{repo}", "--keys", str(root / "keys.json"), "--passphrase-file")

    passed = home.run(*verify, str(root / "pass"))
    assert "PASSED" in passed.stdout and "(RTO)" in passed.stdout

    packs = sorted((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    damaged = bytearray(packs[-1].read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    packs[-1].write_bytes(bytes(damaged))
    failed = home.run(*verify, str(root / "pass"), check=False)

    assert failed.returncode != 0 and "restic check failed" in failed.stderr
    runs = home.query(
        "SELECT ok, destination, problem FROM retention_backuprun WHERE kind = 'restore_test' ORDER BY started_at"
    )
    assert [r[0] for r in runs[-2:]] == [1, 0] and runs[-1][1] == f"restic:{repo}" and "restic" in runs[-1][2]
    assert not list(home.home.glob("restic-restore-*")) and not list(home.home.glob("restore-test-*"))


def test_forget_keeps_the_configured_snapshots_and_prunes_the_rest(
    site: tuple[Installation, Path], tmp_path: Path
) -> None:
    home, root = site
    repo = tmp_path / "repo"
    keep_all = Installation(
        home.home, {**home.env, "CASEBRIDGE_RESTIC_KEEP_DAILY": "0", "CASEBRIDGE_RESTIC_KEEP_WEEKLY": "0"}
    )
    keep_all.run("backup", "create", f"restic:{repo}")
    keep_all.run("backup", "create", f"restic:{repo}")
    assert len(json.loads(_restic(root, repo, "snapshots", "--json").stdout)) == 2

    pruned = home.run("backup", "create", f"restic:{repo}").stdout  # default: 7 daily, 5 weekly

    assert "forgotten and pruned" in pruned
    # All three were taken today: keep-daily keeps the newest of the day.
    remaining = json.loads(_restic(root, repo, "snapshots", "--json").stdout)
    assert len(remaining) == 1 and home.run("backup", "list", f"restic:{repo}").stdout.split()[-1] in pruned
