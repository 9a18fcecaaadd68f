"""Checkpoints are also kept outside the database; `audit verify` compares and names a rolled
back database, a checkpoint removed or changed in the database, and a planted witness file."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from casebridge.audit import chain, witness
from casebridge.audit.models import Checkpoint
from casebridge.audit.testing import checkpointed, tamper

pytestmark = pytest.mark.django_db


def test_each_checkpoint_is_written_outside_the_database_once(django_capture_on_commit_callbacks: Any) -> None:
    first = checkpointed(3, django_capture_on_commit_callbacks)
    second = checkpointed(2, django_capture_on_commit_callbacks)
    files = sorted(Path(settings.AUDIT_WITNESS_DIR).glob("checkpoint-*.json"))
    assert [json.loads(f.read_text())["tree_size"] for f in files] == [first, second]
    assert json.loads(files[1].read_text()) == chain.signed_head(Checkpoint.objects.get(seq=second))
    assert oct(Path(settings.AUDIT_WITNESS_DIR).stat().st_mode & 0o777) == "0o700"
    assert chain.verify().ok
    with pytest.raises(RuntimeError, match="different checkpoint"):
        witness.write({**chain.signed_head(Checkpoint.objects.get(seq=first)), "root": "00"})


def test_a_database_rolled_back_to_an_older_copy_is_reported(django_capture_on_commit_callbacks: Any) -> None:
    checkpointed(4, django_capture_on_commit_callbacks)
    later = checkpointed(3, django_capture_on_commit_callbacks)
    # As if yesterday's database were restored: the last events, seals and checkpoint are gone.
    tamper("DELETE FROM audit_checkpoint WHERE seq > 4")
    tamper("DELETE FROM audit_seal WHERE seq > 4")
    tamper("DELETE FROM audit_event WHERE id NOT IN (SELECT event_id FROM audit_seal)")
    result = chain.verify()
    assert not result.ok and result.problem.startswith("rollback") and result.bad_seq == later
    assert "the database ends at #4" in result.problem


def test_a_checkpoint_removed_or_changed_in_the_database_is_named(django_capture_on_commit_callbacks: Any) -> None:
    first = checkpointed(3, django_capture_on_commit_callbacks)
    checkpointed(2, django_capture_on_commit_callbacks)
    tamper("DELETE FROM audit_checkpoint WHERE seq = %s", [first])
    result = chain.verify()
    assert not result.ok
    assert result.problem == f"checkpoint #{first} is missing from the database (its copy in the witness folder exists)"


def test_a_witness_file_not_signed_by_the_log_is_reported(django_capture_on_commit_callbacks: Any) -> None:
    seq = checkpointed(3, django_capture_on_commit_callbacks)
    planted = {**chain.signed_head(Checkpoint.objects.get(seq=seq)), "tree_size": 40, "signature": "AAAA"}
    (Path(settings.AUDIT_WITNESS_DIR) / "checkpoint-000000000040.json").write_text(json.dumps(planted))
    result = chain.verify()
    assert not result.ok and "not signed by this log's key" in result.problem


def test_a_witness_outage_does_not_undo_the_checkpoint_and_is_caught_up(
    django_capture_on_commit_callbacks: Any, settings: Any, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.AUDIT_WITNESS_DIR = blocked
    seq = checkpointed(2, django_capture_on_commit_callbacks)
    assert Checkpoint.objects.filter(seq=seq).exists()
    settings.AUDIT_WITNESS_DIR = tmp_path / "witness"
    out = io.StringIO()
    call_command("audit", "witness", stdout=out)
    assert out.getvalue() == "1 witness copy written to the witness folder\n"
    assert (tmp_path / "witness" / f"checkpoint-{seq:012d}.json").exists()
    assert chain.verify().ok


def test_a_daily_digest_of_new_checkpoints_when_enabled(
    personas: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core import mail

    seq = checkpointed(3, django_capture_on_commit_callbacks)
    assert witness.send_digest() == 0  # off by default
    settings.AUDIT_CHECKPOINT_DIGEST = True
    with django_capture_on_commit_callbacks(execute=True):
        assert witness.send_digest() == 1
        assert witness.send_digest() == 0  # once a day
    [to_practice] = [m for m in mail.outbox if "Smile Dental" in m.subject]
    head = chain.signed_head(Checkpoint.objects.get(seq=seq))
    assert to_practice.to == [personas.members["compliance_officer"].email]
    assert head["root"] in to_practice.body and head["signature"] in to_practice.body
