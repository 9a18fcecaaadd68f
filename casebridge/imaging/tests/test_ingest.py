"""Cleaning on ingest: attaching a file to a case removes its identifying metadata into a new
version and crypto-shreds the original version."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from PIL import Image

from casebridge.access.policy import case_for
from casebridge.audit import catalog
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Case
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _ready_crown
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging import ingest
from casebridge.imaging.sanitize import sanitize
from casebridge.imaging.tests.cases import zipped
from casebridge.imaging.tests.test_sanitize import PHI, identifying_jpeg
from casebridge.vault import api as vault
from casebridge.vault.config import blob_store
from casebridge.vault.models import StoredObject

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA


def _store(world: Personas, content: bytes) -> StoredObject:
    access = _access(world)
    return vault.put_stream(
        organization=access.organization, actor=access.actor, chunks=[content], length=len(content)
    ).stored_object


def _current(stored: StoredObject) -> bytes:
    stored.refresh_from_db()
    return b"".join(bytes(piece) for piece in vault.read_version(vault.get_version(stored)))


def _blob_files() -> set[Path]:
    root = blob_store().root
    return {p for p in root.rglob("*") if p.is_file()}


def _draft(world: Personas) -> Case:
    return actions.create_case(_access(world), patient_name="Jane Roe", case_type="digital_crown")


def test_a_photo_loses_its_gps_but_keeps_its_orientation_and_the_original_is_shredded(
    world: Personas,
    django_capture_on_commit_callbacks,
) -> None:
    original = identifying_jpeg(orientation=6)
    stored = _store(world, original)
    first = vault.get_version(stored)
    with django_capture_on_commit_callbacks(execute=True):
        actions.attach_file(_access(world), _draft(world), stored, kind="photo", label="shade")

    cleaned = _current(stored)
    assert stored.current_version == 2
    image = Image.open(io.BytesIO(cleaned))
    exif = image.getexif()
    assert exif.get(0x0112) == 6  # orientation kept
    assert not exif.get_ifd(0x8825) and 0x010F not in exif  # no GPS, no camera make
    assert PHI not in cleaned and b"SecretCam" not in cleaned

    first.refresh_from_db()
    with pytest.raises(vault.ObjectUnavailable):
        vault.read_version(first)
    with pytest.raises(vault.ObjectUnavailable):
        vault.get_version(stored, 1)
    assert not blob_store().exists(first.blob_name)
    # Named for what happened, not as a destruction that would alarm whoever reviews the log.
    assert not Event.objects.filter(action="file.version_destroyed").exists()
    replaced = Event.objects.get(action="file.original_replaced_by_cleaned_copy")
    assert replaced.details["version"] == 1 and replaced.details["reason"] == "metadata removed on ingest"
    assert replaced.details["sha256"] == first.sha256
    assert (
        replaced.details["cleaned_version"] == 2
        and replaced.details["cleaned_sha256"] == vault.get_version(stored).sha256
    )
    assert "file.original_replaced_by_cleaned_copy" not in {a.name for a in catalog.all_actions() if a.sensitive}

    added = Event.objects.get(action="case.attachment.added")
    removed = added.details["metadata"]["removed"]
    assert removed["APP1 EXIF"] == 1 and removed["EXIF field GPSLatitude"] == 1 and "COM comment" in removed
    assert added.details["metadata"]["orientation_kept"] == 6
    assert "Jane" not in repr(added.details) and "SecretCam" not in repr(added.details)


def test_an_stl_header_with_a_patient_name_is_cleared(world: Personas) -> None:
    triangles = 2
    facet = struct.pack("<12fH", *([0.0] * 12), 0)
    content = b"Jane Roe 1961-04-02 upper".ljust(80, b" ") + struct.pack("<I", triangles) + facet * triangles
    stored = _store(world, content)
    actions.attach_file(_access(world), _draft(world), stored, kind="scan", label="upper")
    cleaned = _current(stored)
    assert cleaned[:80] == b"CaseBridge".ljust(80, b" ") and cleaned[80:] == content[80:]
    assert Event.objects.get(action="case.attachment.added").details["metadata"]["removed"] == {"STL header": 1}


def test_a_clean_file_keeps_its_only_version(world: Personas) -> None:
    content = b"solid\nendsolid\n"
    stored = _store(world, content)
    actions.attach_file(_access(world), _draft(world), stored, kind="scan", label="bite")
    assert _current(stored) == content and stored.current_version == 1
    assert not Event.objects.filter(action__startswith="file.original_replaced").exists()


def test_a_malformed_photo_is_refused_and_nothing_changes(world: Personas) -> None:
    broken = identifying_jpeg()[:400]  # cut inside a segment
    stored = _store(world, broken)
    case = _draft(world)
    with pytest.raises(actions.ValidationError, match="could not be checked"):
        actions.attach_file(_access(world), case, stored, kind="photo")
    stored.refresh_from_db()
    assert stored.attached_at is None and stored.current_version == 1 and not case.attachments.exists()


def test_tiff_is_kept_with_a_visible_warning(world: Personas, vault_home: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "TIFF")
    stored = _store(world, out.getvalue())
    case = _ready_crown(world)
    actions.attach_file(_access(world), case, stored, kind="photo", label="smile")
    assert stored.current_version == 1
    details = Event.objects.filter(action="case.attachment.added").latest("pk").details["metadata"]
    assert details["sanitized"] is False and "TIFF" in details["reason"]
    page = signed_in_client(world.members["clinician"]).get(
        reverse("case_detail", args=[world.practice.slug, case.number])
    )
    assert (
        b"metadata kept" in page.content
        and b"TIFF metadata (camera, location, dates) could not be removed" in page.content
    )


def test_a_cbct_archive_is_not_read_to_be_passed_through_and_says_what_reading_it_would(
    world: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sanitizers pass a ZIP through unchanged: attaching a 2 GB CBCT archive does not decrypt
    it once just to count its bytes (the vault's reads check every segment anyway), and the
    attachment's event reports what a read would have."""
    content = zipped({"IM0001": b"DICM" + PHI})
    read_result = sanitize("zip", [content], len(content))
    b"".join(read_result[0])
    stored = _store(world, content)

    def unread(source: Any) -> Any:
        raise AssertionError("the archive was read")

    monkeypatch.setattr(ingest, "_plaintext", unread)
    actions.attach_file(_access(world), _draft(world), stored, kind="other", label="other")
    assert _current(stored) == content and stored.current_version == 1
    reported = Event.objects.get(action="case.attachment.added").details["metadata"]
    assert reported == read_result[1].audit_details()


@pytest.mark.usefixtures("transactional_db")  # real commits: the test itself opens no transaction
def test_the_content_is_cleaned_outside_any_transaction(world: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2 GB attachment is read twice and written once while cleaning: no transaction (and so no
    row lock) may be open around that. Watched on the real sanitizer, which still does the work."""
    in_transaction: list[bool] = []
    real_sanitize = ingest.sanitize

    def watched(*args: Any, **kwargs: Any) -> Any:
        in_transaction.append(connection.in_atomic_block)
        return real_sanitize(*args, **kwargs)

    monkeypatch.setattr(ingest, "sanitize", watched)
    stored = _store(world, identifying_jpeg())
    actions.attach_file(_access(world), _draft(world), stored, kind="photo", label="shade")
    assert in_transaction == [False, False]  # measured, then written: both outside
    assert PHI not in _current(stored)


def test_a_case_sent_while_its_file_was_cleaned_gets_nothing_and_keeps_nothing(
    world: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = _ready_crown(world)
    stored = _store(world, identifying_jpeg())
    blobs_before = _blob_files()
    real_clean = actions.clean_content

    def clean_while_the_case_is_sent(*args: Any, **kwargs: Any) -> Any:
        cleaned = real_clean(*args, **kwargs)
        actions.submit_case(_access(world), case_for(_access(world), case.number))  # another request, meanwhile
        return cleaned

    monkeypatch.setattr(actions, "clean_content", clean_while_the_case_is_sent)
    with pytest.raises(actions.ValidationError, match="already sent"):
        actions.attach_file(_access(world), case, stored, kind="photo", label="shade")
    stored.refresh_from_db()
    assert stored.attached_at is None and stored.current_version == 1
    assert _blob_files() == blobs_before  # the cleaned copy was removed
    assert not Event.objects.filter(action="file.version_added", target_id=str(stored.pk)).exists()
    assert vault.get_version(stored).wrapped_dek  # the upload is as it was, still its uploader's
