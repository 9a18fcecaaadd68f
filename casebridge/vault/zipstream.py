"""Stored versions as one ZIP: handed to the transfer server with an archive ticket when one runs
(and the ticket fits in a URL), otherwise streamed here; decrypted segment by segment either way,
so no plaintext touches a disk (kernel/zipstream.py writes the archive)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase

from casebridge.kernel import zipstream
from casebridge.vault import api as vault
from casebridge.vault import transfer
from casebridge.vault.models import ObjectVersion


def archive(
    entries: Iterable[tuple[str, ObjectVersion]], documents: Iterable[tuple[str, bytes]] = ()
) -> Iterator[bytes]:
    """The ZIP of `entries` (name in the archive, version to decrypt into it), piece by piece,
    then `documents` (name, bytes made for this archive: an index, a record as JSON)."""
    stored = ((name, version.size, _reader(version)) for name, version in entries)
    made = ((name, len(data), _once(data)) for name, data in documents)
    return zipstream.archive(itertools.chain(stored, made))


def _reader(version: ObjectVersion) -> Callable[[], Iterator[memoryview]]:
    return lambda: vault.read_version(version)


def _once(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter((data,))


def streamed_response(
    entries: list[tuple[str, ObjectVersion]], filename: str, documents: Iterable[tuple[str, bytes]] = ()
) -> StreamingHttpResponse:
    """The archive streamed from here (never handed over: the transfer server has no documents)."""
    response = StreamingHttpResponse(archive(entries, documents), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def archive_response(entries: list[tuple[str, ObjectVersion]], filename: str) -> HttpResponseBase:
    """The answer to a "download all": a 307 to the transfer server, or the archive from here."""
    handed_over = transfer.redirect_archive(entries, filename)
    if handed_over is not None:
        return handed_over
    return streamed_response(entries, filename)
