"""Extents: a file whose content is a byte range of another version (one DICOM instance inside a
CBCT's stored ZIP), kept nowhere else. It reads exactly that range, authenticated as any read
is; its checksum and type are its own; removing or destroying it never touches its base's blob;
destroying its base destroys it, in the same transaction and on the record; and it cannot be
linked once its base is gone."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from casebridge.audit.models import Event
from casebridge.core.testing import Personas
from casebridge.kernel.crypto.streaming import DEFAULT_LAYOUT, CiphertextIntegrityError
from casebridge.retention import backup
from casebridge.vault import api as vault
from casebridge.vault.config import blob_store
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.reader import VersionReader
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db

SEGMENT = DEFAULT_LAYOUT.plaintext_capacity(1)


class Archive:
    """A stored ZIP of two scans, uncompressed: each member's bytes lie in the archive as they are."""

    def __init__(self, personas: Personas) -> None:
        self.members = {"upper.stl": binary_stl(int(1.5 * SEGMENT)), "lower.stl": binary_stl(5000, b"lower")}
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name, data in self.members.items():
                archive.writestr(name, data)
        self.content = out.getvalue()
        self.staff = personas.members["staff"]
        self.version = vault.put_stream(
            organization=personas.practice, actor=self.staff, chunks=[self.content], length=len(self.content)
        )

    def offset(self, name: str) -> int:
        start = self.content.index(self.members[name])
        assert self.content[start - len(name) : start] == name.encode()  # the data after its local header
        return start

    def extent(self, name: str) -> vault.PendingVersion:
        return vault.extent_of(self.version, offset=self.offset(name), length=len(self.members[name]))

    def link(self, name: str) -> ObjectVersion:
        pending = self.extent(name)
        with transaction.atomic():
            return vault.link_new_versions([pending], actor=self.staff)[0]


@pytest.fixture
def archive(personas: Personas, vault_home: Path) -> Archive:
    return Archive(personas)


def _read(version: ObjectVersion, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(bytes(piece) for piece in vault.read_version(version, start, end))


def test_an_extent_reads_its_range_of_the_base_and_nothing_around_it(archive: Archive) -> None:
    upper = archive.members["upper.stl"]
    version = archive.link("upper.stl")
    stored = StoredObject.objects.get(pk=version.stored_object_id)
    version = vault.get_version(stored)
    assert version.is_extent and version.base_id == archive.version.pk
    assert (version.size, stored.file_type, version.sha256) == (
        len(upper),
        "stl",
        hashlib.sha256(upper).hexdigest(),
    )
    assert _read(version) == upper
    draw = random.Random(7)
    for _ in range(30):
        start = draw.randrange(len(upper))
        end = draw.randrange(start, len(upper) + 100)
        assert _read(version, start, end) == upper[start:end]
    reader = VersionReader(version)
    reader.seek(SEGMENT - 10)
    assert reader.read(50) == upper[SEGMENT - 10 : SEGMENT + 40]
    assert reader.read() == upper[SEGMENT + 40 :]
    with pytest.raises(ValueError):
        _read(version, len(upper) + 1)


def test_no_blob_is_written_for_an_extent_and_it_is_on_the_record_as_held_in_its_base(archive: Archive) -> None:
    before = sorted(p for p in blob_store().root.rglob("*") if p.is_file())
    version = archive.link("lower.stl")
    assert sorted(p for p in blob_store().root.rglob("*") if p.is_file()) == before
    event = Event.objects.get(action="file.uploaded", target_id=str(version.stored_object_id))
    assert event.details["within"] == str(archive.version.stored_object_id)
    assert event.details["sha256"] == version.sha256


def test_the_observer_sees_every_byte_and_a_reader_on_the_base_gives_the_same_extent(archive: Archive) -> None:
    seen = bytearray()
    start, upper = archive.offset("upper.stl"), archive.members["upper.stl"]
    plain = vault.extent_of(archive.version, offset=start, length=len(upper), observe=seen.extend)
    through = vault.extent_of(archive.version, offset=start, length=len(upper), reader=VersionReader(archive.version))
    assert bytes(seen) == upper
    assert (plain.sha256, plain.size, plain.base_offset) == (through.sha256, through.size, through.base_offset)


def test_ranges_outside_the_base_extents_of_extents_and_readers_on_other_versions_are_refused(
    archive: Archive,
) -> None:
    size = archive.version.size
    for offset, length in ((-1, 10), (0, size + 1), (size - 5, 6)):
        with pytest.raises(ValueError):
            vault.extent_of(archive.version, offset=offset, length=length)
    extent = archive.link("upper.stl")
    with pytest.raises(ValueError):
        vault.extent_of(extent, offset=0, length=10)
    with pytest.raises(ValueError):
        vault.extent_of(archive.version, offset=0, length=10, reader=VersionReader(extent))


def test_a_tampered_byte_of_the_base_fails_the_extents_read(archive: Archive) -> None:
    version = archive.link("upper.stl")
    path = blob_store().path_for(archive.version.blob_name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CiphertextIntegrityError):
        _read(version)


def test_discarding_or_destroying_an_extent_leaves_its_base_whole(archive: Archive) -> None:
    pending = archive.extent("upper.stl")
    vault.discard(pending)
    vault.sync([pending])
    version = archive.link("lower.stl")
    vault.destroy_object(StoredObject.objects.get(pk=version.stored_object_id), actor=None, reason="test: one slice")
    assert blob_store().exists(archive.version.blob_name)
    base = vault.get_version(StoredObject.objects.get(pk=archive.version.stored_object_id))
    assert _read(base) == archive.content
    with pytest.raises(vault.ObjectUnavailable):
        vault.get_version(StoredObject.objects.get(pk=version.stored_object_id))


def test_destroying_the_base_destroys_its_extents_on_the_record(archive: Archive) -> None:
    extents = [archive.link("upper.stl"), archive.link("lower.stl")]
    base = StoredObject.objects.get(pk=archive.version.stored_object_id)
    held = vault.destroy_object(base, actor=archive.staff, reason="sent for the wrong patient")
    assert {o.pk for o in held} == {v.stored_object_id for v in extents}
    assert not blob_store().exists(archive.version.blob_name)
    for version in extents:
        stored = StoredObject.objects.get(pk=version.stored_object_id)
        assert stored.is_destroyed
        assert ObjectVersion.objects.get(pk=version.pk).wrapped_dek is None  # no copy of the key is left
        with pytest.raises(vault.ObjectUnavailable):
            vault.get_version(stored)
        with pytest.raises(vault.ObjectUnavailable):
            vault.read_version(ObjectVersion.objects.select_related("stored_object").get(pk=version.pk))
        event = Event.objects.get(action="file.destroyed", target_id=str(stored.pk))
        assert event.details["within"] == str(base.pk)
        assert event.details["reason"] == "sent for the wrong patient"
        assert event.details["versions"] == [{"version": 1, "sha256": version.sha256, "size": version.size}]
    assert vault.destroy_object(base, actor=None, reason="again") == []


def test_an_extent_of_a_base_destroyed_meanwhile_is_not_linked(archive: Archive) -> None:
    pending = archive.extent("upper.stl")
    vault.destroy_object(
        StoredObject.objects.get(pk=archive.version.stored_object_id), actor=None, reason="test: destroyed first"
    )
    with pytest.raises(vault.ObjectUnavailable), transaction.atomic():
        vault.link_new_versions([pending], actor=archive.staff)
    with pytest.raises(vault.ObjectUnavailable), transaction.atomic():
        vault.link_version(pending, actor=archive.staff)
    assert not StoredObject.objects.filter(pk=pending.object_id).exists()


def test_a_backup_copies_the_base_blob_once_and_no_extent(archive: Archive) -> None:
    archive.link("upper.stl")
    archive.link("lower.stl")
    with connection.cursor() as cursor:
        cursor.execute(backup._LIVE_BLOBS)
        names = [name for name, _ in cursor.fetchall()]
    assert names.count(archive.version.blob_name) == 1


def test_the_transfer_server_serves_an_extent_as_its_range_of_the_base(archive: Archive, settings: Any) -> None:
    """Downloads of an extent take the same road as any file's: a ticket to the transfer server,
    which decrypts the base's blob from where the extent starts."""
    from casebridge.kernel.tickets import ticket_key
    from casebridge.transfer.app import TransferApp
    from casebridge.transfer.tests.client import TRANSFER_URL, call
    from casebridge.vault import transfer

    upper = archive.members["upper.stl"]
    stored = StoredObject.objects.get(pk=archive.link("upper.stl").stored_object_id)
    version = vault.get_version(stored)
    server = TransferApp(ticket_key(settings.SECRET_KEY), blob_store())
    transfer.use_transfer_server(TRANSFER_URL)
    try:
        whole = transfer.redirect(stored, version, 0, version.size, False)
        part = transfer.redirect(stored, version, SEGMENT - 100, SEGMENT + 4000, True)
    finally:
        transfer.use_transfer_server(None)
    assert whole is not None and part is not None and whole.status_code == part.status_code == 307
    answer = call(server, whole["Location"])
    assert answer.status == 200 and b"".join(answer.chunks) == upper
    answer = call(server, part["Location"])
    assert answer.status == 206 and b"".join(answer.chunks) == upper[SEGMENT - 100 : SEGMENT + 4000]
    assert answer["Content-Range"] == f"bytes {SEGMENT - 100}-{SEGMENT + 3999}/{len(upper)}"
