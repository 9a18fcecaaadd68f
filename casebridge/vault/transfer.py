"""The application's side of the transfer server (casebridge/transfer/).

Downloads: when `casebridge serve` runs a transfer server, a download the application has
authorized and audited is answered with a 307 to that server, carrying a sealed single-use ticket
for exactly the range decided here. Uploads: the tus `Location` points at the transfer server,
which asks the application (the handover endpoints in api/uploads.py, with the client's own
credentials and the internal key) for a lease before each body and commits after it. Without a
transfer server (tests, `serve --transfer-port 0`), the application moves the bytes itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound

from casebridge.access.guards import FROM_TRANSFER_SERVER
from casebridge.transfer.tickets import DownloadTicket, internal_key, seal, ticket_key
from casebridge.vault import keystore
from casebridge.vault.crypto.streaming import associated_data
from casebridge.vault.models import ObjectVersion, StoredObject

_endpoint: tuple[str, bytes] | None = None
SOURCE_URL_SECONDS = 300  # the transfer server opens its GETs as the download starts (tickets live 60 s)


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
    from casebridge.vault.backends.filesystem import FileSystemStore
    from casebridge.vault.config import blob_store

    store = blob_store()
    source = ""
    if not isinstance(store, FileSystemStore):
        # The transfer server reads other stores through a presigned URL: it needs no client
        # library and no credentials of its own.
        source = store.download_url(version.blob_name, SOURCE_URL_SECONDS) or ""
        if not source:
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
        source=source,
    )
    response = HttpResponse(status=307)
    response["Location"] = f"{url}/d/{seal(key, ticket)}"
    response["Cache-Control"] = "no-store"  # the ticket is for this request only
    return response


def upload_location(upload_id: object) -> str | None:
    """Where a tus client sends this upload's bodies: the transfer server, when there is one
    and uploads are staged on a filesystem it shares (S3 staging stays in the application)."""
    from casebridge.vault.backends.filesystem import FileSystemStore
    from casebridge.vault.config import blob_store

    if _endpoint is None or not isinstance(blob_store(), FileSystemStore):
        return None
    return f"{_endpoint[0]}/u/{upload_id}"


class TransferServerMiddleware:
    """Requests the transfer server makes on a client's behalf.

    They prove themselves with the internal key (derived from SECRET_KEY) and carry the client's
    own address, which is what audit events then record. A request with a wrong key is refused
    before anything else runs; without the header a request is an ordinary one.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.key = internal_key(settings.SECRET_KEY).hex().encode()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        presented = request.META.get("HTTP_CASEBRIDGE_TRANSFER_KEY")
        request.META[FROM_TRANSFER_SERVER] = False
        if presented is not None:
            if not hmac.compare_digest(presented.encode(), self.key):
                return HttpResponseNotFound()
            request.META[FROM_TRANSFER_SERVER] = True
            client = request.META.get("HTTP_CASEBRIDGE_CLIENT_ADDRESS")
            if client:
                request.META["REMOTE_ADDR"] = client
        return self.get_response(request)


class TransferOriginCSPMiddleware:
    """Pages may send upload bodies to the transfer server: its origin joins `connect-src`.

    Listed just inside django-csp's middleware, so the addition is there when that writes the
    header (the same mechanism as django-csp's own `csp_update` decorator)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if _endpoint is not None:
            parts = urlsplit(_endpoint[0])
            response._csp_update = {"connect-src": [f"{parts.scheme}://{parts.netloc}"]}  # type: ignore[attr-defined]
        return response
