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
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from casebridge.access.guards import FROM_TRANSFER_SERVER, transfer_server_only
from casebridge.kernel.appending import LAYOUT, Continuation
from casebridge.kernel.crypto.streaming import associated_data
from casebridge.kernel.staging import part_name
from casebridge.kernel.tickets import (
    MAX_ARCHIVE_TICKET,
    TICKET_ID_PATTERN,
    TICKET_TTL_SECONDS,
    ArchiveTicket,
    DownloadTicket,
    internal_key,
    seal,
    seal_archive,
    ticket_key,
)
from casebridge.vault import keystore
from casebridge.vault.models import ObjectVersion, SpentTicket, StoredObject, Upload

_endpoint: tuple[str, bytes] | None = None
SOURCE_URL_SECONDS = 300  # the transfer server opens its GETs as the download starts (tickets live 60 s)
# A request's part URLs must outlive the request: an hour is a 5 GiB body at 1.5 MB/s. They
# name one upload's staging parts only, and the transfer server keeps them in memory.
PART_URL_SECONDS = 3600


def use_transfer_server(url: str | None) -> None:
    """Send downloads to the transfer server at `url` (None: stream them here)."""
    global _endpoint
    _endpoint = (url.rstrip("/"), ticket_key(settings.SECRET_KEY)) if url else None


def transfer_server() -> str | None:
    return _endpoint[0] if _endpoint else None


def etag(version: ObjectVersion) -> str:
    return f'"sha256-{version.sha256}"'


def _ticket(
    stored: StoredObject, version: ObjectVersion, start: int, end: int, partial: bool, filename: str = ""
) -> DownloadTicket | None:
    """The sealed decision for [start, end) of `version` (None: the store offers the transfer
    server no way to read it)."""
    from casebridge.kernel.backends.filesystem import FileSystemStore
    from casebridge.vault.config import blob_store

    store = blob_store()
    source = ""
    if not isinstance(store, FileSystemStore):
        # The transfer server reads other stores through a presigned URL: it needs no client
        # library and no credentials of its own.
        source = store.download_url(version.blob_name, SOURCE_URL_SECONDS) or ""
        if not source:
            return None
    return DownloadTicket(
        blob=version.blob_name,
        ciphertext_size=version.ciphertext_size,
        dek=keystore.version_dek(version, stored.organization_id),
        # An extent (a slice held in its archive) is its range of the base's blob, sealed as the base.
        associated=associated_data(*keystore.sealed_as(version)),
        offset=version.base_offset,
        start=start,
        end=end,
        size=version.size,
        partial=partial,
        content_type=stored.mime_type,
        filename=filename or stored.neutral_name(version.version),
        etag=etag(version),
        source=source,
    )


def redirect(
    stored: StoredObject, version: ObjectVersion, start: int, end: int, partial: bool, filename: str = ""
) -> HttpResponse | None:
    """A 307 to the transfer server for [start, end) of `version`, or None to stream it here."""
    if _endpoint is None:
        return None
    ticket = _ticket(stored, version, start, end, partial, filename)
    if ticket is None:
        return None
    url, key = _endpoint
    response = HttpResponse(status=307)
    response["Location"] = f"{url}/d/{seal(key, ticket)}"
    response["Cache-Control"] = "no-store"  # the ticket is for this request only
    return response


def redirect_archive(entries: list[tuple[str, ObjectVersion]], filename: str) -> HttpResponse | None:
    """A 307 to the transfer server's /z/ with one ticket for every whole file of a ZIP, or None
    to stream it here (no transfer server, a store it cannot read, a ticket too long for a URL)."""
    if _endpoint is None or not entries:
        return None
    tickets = []
    for name, version in entries:
        ticket = _ticket(version.stored_object, version, 0, version.size, False, name)
        if ticket is None:
            return None
        tickets.append((name, ticket))
    url, key = _endpoint
    sealed = seal_archive(key, ArchiveTicket(tuple(tickets), filename))
    if len(sealed) > MAX_ARCHIVE_TICKET:
        return None
    response = HttpResponse(status=307)
    response["Location"] = f"{url}/z/{sealed}"
    response["Cache-Control"] = "no-store"
    return response


# --- single use of download tickets -------------------------------------------------------------
# A spent ticket's id stays recorded this long past the ticket's expiry: a transfer server whose
# clock lags the application's must still find it while it would accept the ticket.
SPENT_TICKET_GRACE = timedelta(minutes=5)
PURGE_EVERY_SECONDS = 60.0
_purged_at = 0.0
_purge_lock = threading.Lock()


def redeem(ticket_id: str, expires_at: datetime) -> bool:
    """Record `ticket_id` as used: True the first time, False ever after (until it is purged,
    long after the ticket expired). The primary key makes this hold across transfer servers,
    hosts and restarts."""
    _purge_expired_tickets()
    try:
        with transaction.atomic():
            SpentTicket.objects.create(id=ticket_id, expires_at=expires_at)
    except IntegrityError:
        return False
    return True


def _purge_expired_tickets() -> None:
    # At most once a minute per process: one indexed DELETE, not one per download.
    global _purged_at
    with _purge_lock:
        if time.monotonic() - _purged_at < PURGE_EVERY_SECONDS:
            return
        _purged_at = time.monotonic()
    SpentTicket.objects.filter(expires_at__lt=timezone.now() - SPENT_TICKET_GRACE).delete()


@csrf_exempt  # no ambient credentials: only the internal key, sent explicitly
@transfer_server_only
def redeem_ticket(request: HttpRequest) -> HttpResponseBase:
    """The transfer server spends a ticket here before it streams a byte: 204 the first time,
    410 when the ticket was used already (by any transfer server, before any restart)."""
    try:
        data = json.loads(request.body or b"{}")
        ticket_id, expires = str(data["id"]), float(data["expires"])
    except (ValueError, KeyError, TypeError):
        return HttpResponse("Send the ticket's id and expiry.", status=400, content_type="text/plain")
    now = time.time()
    if request.method != "POST" or not re.fullmatch(TICKET_ID_PATTERN, ticket_id):
        return HttpResponse("Send the ticket's id and expiry.", status=400, content_type="text/plain")
    if not now - TICKET_TTL_SECONDS <= expires <= now + 2 * TICKET_TTL_SECONDS:
        return HttpResponse("That expiry is not a live ticket's.", status=400, content_type="text/plain")
    if not redeem(ticket_id, datetime.fromtimestamp(expires, UTC)):
        return HttpResponse("This ticket was used already.", status=410, content_type="text/plain")
    return HttpResponse(status=204)


def upload_location(upload_id: object) -> str | None:
    """Where a tus client sends this upload's bodies: the transfer server, when there is one."""
    if _endpoint is None:
        return None
    return f"{_endpoint[0]}/u/{upload_id}"


def part_urls(upload: Upload, cont: Continuation, content_length: int, *, rebuild: bool) -> dict[str, Any] | None:
    """For an upload staged in an object store's parts: presigned URLs for what the request the
    lease is for may do. PUT: every part from the one it starts in to the one its last byte (or
    the final segment) reaches; GET: the part it starts in, and when the transfer server does not
    hold the upload's hash (`rebuild`), every part before it, to recompute that from."""
    if not upload.part_size:
        return None
    from casebridge.vault.config import blob_store

    store = blob_store()
    size = upload.part_size
    first = cont.ciphertext_offset // size
    reach = min(LAYOUT.ciphertext_size(upload.length), LAYOUT.ciphertext_size(cont.offset + content_length))
    last = max(first, (reach - 1) // size)
    write, read = {}, {}
    for index in range(first, last + 1):
        url = store.upload_url(part_name(str(upload.pk), index), PART_URL_SECONDS)
        if url is None:
            return None
        write[str(index)] = url
    for index in range(0 if rebuild else first, first + 1):
        if index < first or cont.ciphertext_offset % size:
            read[str(index)] = store.download_url(part_name(str(upload.pk), index), PART_URL_SECONDS) or ""
    return {"size": size, "write": write, "read": read}


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
            # Added to what a view's own csp_update asked for, never instead of it.
            update = {**getattr(response, "_csp_update", {})}
            update["connect-src"] = [*update.get("connect-src", []), f"{parts.scheme}://{parts.netloc}"]
            response._csp_update = update  # type: ignore[attr-defined]
        return response
