"""Key rotation re-wraps organization keys only; retired versions are no longer needed."""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from casebridge.audit.models import Event
from casebridge.core.testing import Personas
from casebridge.vault import api as vault
from casebridge.vault import keystore
from casebridge.vault.config import key_provider
from casebridge.vault.models import ObjectVersion, OrgKey
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db


def _store(personas: Personas, org_role: str = "staff") -> tuple[ObjectVersion, bytes]:
    content = binary_stl(1_500_000)
    version = vault.put_stream(
        organization=personas.practice,
        actor=personas.members[org_role],
        chunks=[content[i : i + 300_000] for i in range(0, len(content), 300_000)],
        length=len(content),
    )
    return version, content


def _read(version: ObjectVersion) -> bytes:
    version.refresh_from_db()
    return b"".join(bytes(chunk) for chunk in vault.read_version(version))


def test_rotate_then_retire_keeps_every_file_readable_without_the_old_key(personas: Personas, vault_home: Path) -> None:
    first, first_content = _store(personas)
    lab_file = vault.put_stream(
        organization=personas.lab, actor=personas.lab_manager, chunks=[binary_stl(5000)], length=len(binary_stl(5000))
    )
    ciphertext_before = {v.pk: v.blob_name for v in ObjectVersion.objects.all()}
    old = key_provider().current_version()
    out = StringIO()
    call_command("keys", "rotate", stdout=out, stderr=StringIO())
    new = key_provider().current_version()
    assert new != old and "2 organization key(s)" in out.getvalue()
    assert set(OrgKey.objects.values_list("kek_version", flat=True)) == {new}
    with pytest.raises(CommandError, match="current"):
        call_command("keys", "retire", new, stdout=StringIO())
    call_command("keys", "retire", old, stdout=StringIO())
    assert old not in key_provider().versions()
    keystore.forget_cached_keys()
    assert _read(first) == first_content
    assert hashlib.sha256(_read(lab_file)).hexdigest() == lab_file.sha256
    # Content was not re-encrypted: the same blobs, the same wrapped DEKs.
    assert {v.pk: v.blob_name for v in ObjectVersion.objects.all()} == ciphertext_before
    assert Event.objects.filter(action="keys.rotated").exists() and Event.objects.filter(action="keys.retired").exists()


def test_retire_refuses_while_a_key_still_depends_on_the_version(personas: Personas, vault_home: Path) -> None:
    _store(personas)
    old = key_provider().current_version()
    key_provider().rotate()  # a new version, but nothing re-wrapped yet (an interrupted rotation)
    with pytest.raises(CommandError, match="still wraps 1"):
        call_command("keys", "retire", old, stdout=StringIO())
    out = StringIO()
    call_command("keys", "rotate", stdout=out, stderr=StringIO())  # resumes, does not rotate again
    assert "resuming" in out.getvalue()
    assert len(key_provider().versions()) == 2
    call_command("keys", "retire", old, stdout=StringIO())


def test_status_lists_versions(personas: Personas, vault_home: Path) -> None:
    _store(personas)
    out = StringIO()
    call_command("keys", "status", stdout=out)
    assert "(current): wraps 1 organization key(s)" in out.getvalue()


def test_destroying_an_organizations_keys_destroys_all_its_files(personas: Personas, vault_home: Path) -> None:
    version, _content = _store(personas)
    keystore.destroy_org_keys(personas.practice.pk, actor=None, reason="BAA ended: destroy")
    with pytest.raises(keystore.KeyDestroyed):
        _read(version)
