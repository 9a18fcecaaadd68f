"""Handing downloads to the transfer server (casebridge/transfer/).

When `casebridge serve` runs a transfer server, a download the application has authorized and
audited is answered with a 307 to that server, carrying a sealed single-use ticket for exactly
the range decided here. Without one (tests, `serve --no-transfer-server`), the application
streams the content itself.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from casebridge.transfer.tickets import DownloadTicket, seal, ticket_key
from casebridge.vault import keystore
from casebridge.vault.crypto.streaming import associated_data
from casebridge.vault.models import ObjectVersion, StoredObject

_endpoint: tuple[str, bytes] | None = None


def use_transfer_server(url: str | None) -> None:
    """Send downloads to the transfer server at `url` (None: stream them here)."""
    global _endpoint
    _endpoint = (url.rstrip("/"), ticket_key(settings.SECRET_KEY)) if url else None


def transfer_server() -> str | None:
    return _endpoint[0] if _endpoint else None


def etag(version: ObjectVersion) -> str:
    return f'"sha256-{version.sha256}"'


def redirect(stored: StoredObject, version: ObjectVersion, start: int, end: int, partial: bool) -> HttpResponse | None:
    """A 307 to the transfer server for [start, end) of `version`, or None to stream it here."""
    if _endpoint is None:
        return None
    url, key = _endpoint
    ticket = DownloadTicket(
        blob=version.blob_name,
        ciphertext_size=version.ciphertext_size,
        dek=keystore.version_dek(version, stored.organization_id),
        associated=associated_data(stored.pk, version.version),
        start=start,
        end=end,
        size=version.size,
        partial=partial,
        content_type=stored.mime_type,
        filename=stored.neutral_name(version.version),
        etag=etag(version),
    )
    response = HttpResponse(status=307)
    response["Location"] = f"{url}/d/{seal(key, ticket)}"
    return response
