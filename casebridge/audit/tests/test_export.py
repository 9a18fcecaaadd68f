"""An export of the audit log verifies with its files and the public key alone; an event edited,
deleted, inserted or reordered, a truncated export and a changed manifest are each caught with
the first bad sequence number; a range from the middle of the log verifies too."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from casebridge.audit import chain, triggers
from casebridge.audit.api import record
from casebridge.audit.export import export, verify_export
from casebridge.audit.models import Event

pytestmark = pytest.mark.django_db


def _public_key() -> bytes:
    out = io.StringIO()
    call_command("audit", "public-key", stdout=out)
    return out.getvalue().encode()


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    for i in range(25):
        record("org.created", details={"n": i})
        if i == 11:
            chain.checkpoint_now()
    folder = tmp_path / "export"
    export(folder)
    return folder


def _lines(folder: Path) -> list[str]:
    return (folder / "events.jsonl").read_text().splitlines()


def _rewrite(folder: Path, change: Callable[[list[str]], list[str]]) -> None:
    (folder / "events.jsonl").write_text("\n".join(change(_lines(folder))) + "\n")


def test_a_full_export_verifies_offline_and_ends_on_a_signed_checkpoint(exported: Path, tmp_path: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["first_seq"] == 1 and manifest["events"] == manifest["last_seq"] == 25
    assert manifest["checkpoints"] == 2  # at #12 and the head written by the export
    result = verify_export(exported, _public_key())
    assert result.ok and result.checked == 25 and result.checkpoints == 2
    key = tmp_path / "audit.pem"
    key.write_bytes(_public_key())
    out = io.StringIO()
    call_command("audit", "verify", "--export", str(exported), "--public-key", str(key), stdout=out)
    assert "export intact: 25 events, 2 signed checkpoints" in out.getvalue()
    assert Event.objects.filter(action="audit.exported").exists()


@pytest.mark.parametrize(
    ("change", "bad_seq", "words"),
    [
        (lambda rows: [rows[i].replace('"n\\":6', '"n\\":66') for i in range(len(rows))], 7, "edited"),
        (lambda rows: rows[:9] + rows[10:], 10, "missing (deleted)"),
        (lambda rows: [*rows[:4], rows[3], *rows[4:]], 5, "repeated or inserted"),
        (lambda rows: [*rows[:2], rows[3], rows[2], *rows[4:]], 3, "out of order"),
        (lambda rows: rows[:18], 19, "truncated"),
    ],
    ids=["edit", "delete", "insert", "reorder", "truncate"],
)
def test_every_kind_of_tampering_with_an_export_is_named(
    exported: Path, change: Callable[[list[str]], list[str]], bad_seq: int, words: str
) -> None:
    _rewrite(exported, change)
    result = verify_export(exported, _public_key())
    assert not result.ok and result.bad_seq == bad_seq and words in result.problem


def test_a_recomputed_chain_still_fails_at_the_signed_checkpoint(exported: Path) -> None:
    """Whoever edits an event and recomputes every hash after it cannot re-sign the checkpoint."""
    import hashlib

    rows = [json.loads(line) for line in _lines(exported)]
    rows[4]["event"] = rows[4]["event"].replace('"n":4', '"n":44')
    prev = rows[3]["hash"]
    for row in rows[4:]:
        row["hash"] = prev = hashlib.sha256(bytes.fromhex(prev) + row["event"].encode()).hexdigest()
    (exported / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = verify_export(exported, _public_key())
    assert not result.ok and result.bad_seq == 12 and "signed a different chain" in result.problem


def test_a_changed_manifest_or_another_key_is_refused(exported: Path, tmp_path: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["files"]["checkpoints.jsonl"] = "0" * 64
    (exported / "manifest.json").write_text(json.dumps(manifest))
    assert "differs from the manifest" in verify_export(exported, _public_key()).problem
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = verify_export(exported, other)
    assert not result.ok and "invalid signature" in result.problem
    with pytest.raises(CommandError, match="needs --public-key"):
        call_command("audit", "verify", "--export", str(exported))


def test_a_range_from_the_middle_of_the_log_verifies(tmp_path: Path) -> None:
    old = [record("org.created", details={"n": i}) for i in range(5)]
    triggers.remove(connection)  # backdated before they are sealed, as if written three days ago
    Event.objects.filter(pk__in=[e.pk for e in old]).update(occurred_at=timezone.now() - timedelta(days=3))
    for i in range(7):
        record("org.created", details={"n": 100 + i})
    chain.checkpoint_now()
    folder = tmp_path / "recent"
    manifest = export(folder, start=timezone.now().date())
    assert manifest["first_seq"] > 1 and manifest["start_frontier"]["size"] == manifest["first_seq"] - 1
    assert verify_export(folder, _public_key()).ok
    with pytest.raises(ValueError, match="not empty"):
        export(folder)
