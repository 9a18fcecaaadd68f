"""Archive segments travel with a backup: an installation whose old events were archived is backed
up and restored (commands in their own processes, as an operator runs them), and the restored
copy verifies its whole chain, archived part included, and still finds archived events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from casebridge.retention.tests.test_backup_drills import PASSPHRASE, _installation

# The installations driven here have SQLite databases of their own whatever the suite runs on.
pytestmark = pytest.mark.sqlite_pass_only

# As if 400 days had passed: every event of the demo is then older than the 13 months.
ARCHIVE_LATER = (
    "from datetime import timedelta\n"
    "from django.utils import timezone\n"
    "from casebridge.audit import archive, chain\n"
    "chain.checkpoint_now()\n"
    "print(sum(s.events for s in archive.archive(now=timezone.now() + timedelta(days=400))))\n"
)


def _backed_up_and_restored(site: Any, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """Export the keys, back `site` up, restore the set into a new installation: it and the
    restore's report."""
    (tmp_path / "pass").write_text(PASSPHRASE)
    keys = ("--keys", str(tmp_path / "keys.json"), "--passphrase-file", str(tmp_path / "pass"))
    site.run("keys", "export", str(tmp_path / "keys.json"), "--passphrase-file", str(tmp_path / "pass"))
    site.run("backup", "create", str(tmp_path / "backup"))
    target = _installation(tmp_path / "restored")
    done = target.run("backup", "restore", str(tmp_path / "backup"), *keys, "--json")
    return target, json.loads(done.stdout.strip().splitlines()[-1])


def test_archived_events_are_backed_up_restored_and_verified(tmp_path: Path) -> None:
    site = _installation(tmp_path / "home")
    site.run("migrate", "--verbosity", "0")
    site.run("demo")
    archived = int(site.run("shell", "-c", ARCHIVE_LATER).stdout.split()[-1])
    assert archived > 100
    assert site.query("SELECT sum(events) FROM audit_archive_segment") == [(archived,)]
    assert "audit chain intact" in site.run("audit", "verify").stdout

    target, report = _backed_up_and_restored(site, tmp_path)

    assert report["ok"] and report["audit_ok"], report
    assert target.query("SELECT sum(events) FROM audit_archive_segment") == [(archived,)]
    assert "audit chain intact" in target.run("audit", "verify").stdout
    found = target.run("audit", "search", "--archived", "--action", "org.").stdout.splitlines()
    assert found and all(json.loads(line)["action"].startswith("org.") for line in found)


DESTROY_OLDEST = (
    "from casebridge.audit import archive\n"
    "from casebridge.audit.models import ArchiveSegment\n"
    "print(archive.destroy(ArchiveSegment.objects.order_by('first_seq').first()).last_seq)\n"
)


def test_a_backup_after_a_segment_was_destroyed_restores_and_verifies_without_it(tmp_path: Path) -> None:
    site = _installation(tmp_path / "home")
    site.run("migrate", "--verbosity", "0")
    site.run("demo")
    site.run("shell", "-c", ARCHIVE_LATER)
    last = int(site.run("shell", "-c", DESTROY_OLDEST).stdout.split()[-1])
    said = site.run("audit", "verify").stdout
    assert "audit chain intact" in said and f"#1-#{last} destroyed" in said

    target, report = _backed_up_and_restored(site, tmp_path)

    assert report["ok"] and report["audit_ok"], report
    assert f"#1-#{last} destroyed" in target.run("audit", "verify").stdout
