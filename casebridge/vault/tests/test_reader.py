"""A stored version read as a seekable file: every read returns exactly the plaintext at its
position, within a segment, across segments and at the end, and what one read returned is never
changed by the next (the reader keeps the segment it is in between reads)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from casebridge.core.testing import Personas
from casebridge.kernel.crypto.streaming import DEFAULT_LAYOUT
from casebridge.vault import api as vault
from casebridge.vault.reader import VersionReader
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db

SEGMENT = DEFAULT_LAYOUT.plaintext_capacity(1)


@pytest.fixture
def stored(personas: Personas, vault_home: Path) -> tuple[vault.ObjectVersion, bytes]:
    content = binary_stl(int(2.5 * SEGMENT))
    version = vault.put_stream(
        organization=personas.practice, actor=personas.members["staff"], chunks=[content], length=len(content)
    )
    return version, content


def test_reads_at_random_places_return_the_plaintext_there(stored: tuple[vault.ObjectVersion, bytes]) -> None:
    version, content = stored
    reader = VersionReader(version)
    draw = random.Random(12)
    spots = [0, SEGMENT - 5, SEGMENT, len(content) - 3, len(content)] + [
        draw.randrange(len(content)) for _ in range(40)
    ]
    for position in spots:
        for size in (0, 1, 7, 4096, SEGMENT // 2, SEGMENT + 10, len(content)):
            reader.seek(position)
            assert reader.read(size) == content[position : position + size]
            assert reader.tell() == min(position + size, len(content))
    reader.seek(SEGMENT - 100)
    assert reader.read() == content[SEGMENT - 100 :]
    assert reader.read(10) == b"" and reader.read() == b""


def test_what_a_read_returned_stays_as_it_was(stored: tuple[vault.ObjectVersion, bytes]) -> None:
    version, content = stored
    reader = VersionReader(version)
    first = reader.read(1000)
    into = bytearray(1000)
    reader.seek(SEGMENT + 50)  # another segment is loaded in its place
    second = reader.read(1000)
    reader.seek(0)
    assert reader.readinto(into) == 1000
    reader.seek(2 * SEGMENT + 1)
    reader.read(1000)
    assert first == content[:1000] == bytes(into)
    assert second == content[SEGMENT + 50 : SEGMENT + 1050]


def test_buffered_and_pending_reads_agree(personas: Personas, stored: tuple[vault.ObjectVersion, bytes]) -> None:
    version, content = stored
    assert io.BufferedReader(VersionReader(version), 1 << 16).read() == content
    pending = vault.seal_version(
        organization_id=personas.practice.pk,
        object_id=version.stored_object_id,
        version=2,
        chunks=[content],
        length=len(content),
    )
    try:
        reader = VersionReader(pending)
        reader.seek(SEGMENT - 10)
        assert reader.read(20) == content[SEGMENT - 10 : SEGMENT + 10]
    finally:
        vault.discard(pending)
