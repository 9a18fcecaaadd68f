"""Download tickets: the application's decision, sealed for the transfer server.

A ticket names one byte range of one stored version and carries what decrypting it takes (the
blob, its size, the data key). It is sealed with AES-256-GCM under a key derived from the
installation's SECRET_KEY, so it can be neither read nor altered outside the servers; it expires
`TICKET_TTL_SECONDS` after it is made and the transfer server accepts it once. It travels in the
URL of a 307 redirect: it holds no PHI (file names are neutral, see StoredObject.neutral_name),
and the transfer server's access log leaves it out.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from casebridge.transfer.appclient import Call

TICKET_TTL_SECONDS = 60
TICKET_ID_PATTERN = r"[0-9a-f]{24}"
_AAD = b"casebridge/download-ticket/v1"
_NONCE = 12


class TicketRefused(Exception):
    """The ticket cannot be honoured; `expired` tells a stale ticket from a forged one."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class DownloadTicket:
    blob: str
    ciphertext_size: int
    dek: bytes
    associated: bytes  # the stream's associated data: object id and version
    start: int
    end: int  # exclusive
    size: int  # of the whole plaintext
    partial: bool  # a 206 answer to a Range request
    content_type: str
    filename: str
    etag: str
    source: str = ""  # a presigned URL of the blob, where the transfer server holds no store for it
    offset: int = 0  # where the file's plaintext starts in the blob's: a file held inside another
    expires: float = field(default_factory=lambda: time.time() + TICKET_TTL_SECONDS)
    id: str = field(default_factory=lambda: os.urandom(12).hex())  # lets a second use be refused (TICKET_ID_PATTERN)


def ticket_key(secret_key: str) -> bytes:
    """The sealing key both servers derive from SECRET_KEY (the same on every host)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_AAD).derive(secret_key.encode())


def internal_key(secret_key: str) -> bytes:
    """What the transfer server shows the application when it asks on a client's behalf."""
    info = b"casebridge/transfer-internal/v1"
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key.encode())


def seal(key: bytes, ticket: DownloadTicket) -> str:
    fields = asdict(ticket)
    fields["dek"] = base64.b64encode(ticket.dek).decode()
    fields["associated"] = base64.b64encode(ticket.associated).decode()
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, json.dumps(fields, separators=(",", ":")).encode(), _AAD)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(key: bytes, token: str, now: float | None = None) -> DownloadTicket:
    """The ticket in `token`; TicketRefused if it was altered, made with another key or expired."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
    except (ValueError, binascii.Error, InvalidTag):
        raise TicketRefused("not a ticket this server issued") from None
    fields = json.loads(plain)
    fields["dek"] = base64.b64decode(fields["dek"])
    fields["associated"] = base64.b64decode(fields["associated"])
    ticket = DownloadTicket(**fields)
    if ticket.expires <= (time.time() if now is None else now):
        raise TicketRefused("the ticket expired", expired=True)
    return ticket


class Spendable(Protocol):
    """What the ledgers need of a ticket: its id and its expiry."""

    @property
    def id(self) -> str: ...

    @property
    def expires(self) -> float: ...


# --- archive tickets: several whole files, streamed as one ZIP by the transfer server ----------
_ARCHIVE_AAD = b"casebridge/archive-ticket/v1"
# A sealed archive ticket travels in a URL too; beyond this length (proxies commonly take 8 KiB
# request lines) the application streams the archive itself instead of handing it over.
MAX_ARCHIVE_TICKET = 7000


@dataclass(frozen=True)
class ArchiveTicket:
    entries: tuple[tuple[str, DownloadTicket], ...]  # (name in the archive, the whole file)
    filename: str
    expires: float = field(default_factory=lambda: time.time() + TICKET_TTL_SECONDS)
    id: str = field(default_factory=lambda: os.urandom(12).hex())


def _ticket_fields(ticket: DownloadTicket) -> dict[str, object]:
    fields = asdict(ticket)
    fields["dek"] = base64.b64encode(ticket.dek).decode()
    fields["associated"] = base64.b64encode(ticket.associated).decode()
    return fields


def seal_archive(key: bytes, ticket: ArchiveTicket) -> str:
    """Sealed like a download ticket (its own associated data), compressed first: file tickets
    repeat most of their fields."""
    document = {
        "entries": [[name, _ticket_fields(t)] for name, t in ticket.entries],
        "filename": ticket.filename,
        "expires": ticket.expires,
        "id": ticket.id,
    }
    plain = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 9)
    nonce = os.urandom(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, plain, _ARCHIVE_AAD)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal_archive(key: bytes, token: str, now: float | None = None) -> ArchiveTicket:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _ARCHIVE_AAD)
        document = json.loads(zlib.decompress(plain, bufsize=1 << 16))
    except (ValueError, binascii.Error, InvalidTag, zlib.error):
        raise TicketRefused("not a ticket this server issued") from None
    entries = []
    for name, fields in document["entries"]:
        fields["dek"] = base64.b64decode(fields["dek"])
        fields["associated"] = base64.b64decode(fields["associated"])
        entries.append((str(name), DownloadTicket(**fields)))
    ticket = ArchiveTicket(tuple(entries), document["filename"], document["expires"], document["id"])
    if ticket.expires <= (time.time() if now is None else now):
        raise TicketRefused("the ticket expired", expired=True)
    return ticket


class TicketLedger(Protocol):
    def spend(self, ticket: Spendable) -> bool:
        """True the first time a ticket is presented, False on every later attempt. Raises
        OSError (or http.client.HTTPException) when it cannot tell: the ticket is then refused."""
        ...


class ApplicationLedger:
    """Tickets spent through the application, which records each id in its database under a
    unique key (vault/transfer.redeem_ticket): single use holds across restarts and across every
    transfer server of the installation. This is what `casebridge serve` runs."""

    PATH = "/api/v1/transfer/tickets/redeem"

    def __init__(self, call: Call) -> None:
        self.call = call

    def spend(self, ticket: Spendable) -> bool:
        body = json.dumps({"id": ticket.id, "expires": ticket.expires}).encode()
        reply = self.call("POST", self.PATH, {"Content-Type": "application/json"}, body)
        if reply.status == 204:
            return True
        if reply.status == 410:
            return False
        raise OSError(f"the application answered {reply.status} to a ticket redemption")


class SpentTickets:
    """Ticket ids already used in this process, remembered until they would have expired anyway.

    Only for a transfer server started without an application to ask (`--app-url`, which `serve`
    always gives): single use then holds for this process's lifetime only."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()

    def spend(self, ticket: Spendable, now: float | None = None) -> bool:
        """True the first time a ticket is presented, False on every later attempt."""
        now = time.time() if now is None else now
        with self._lock:
            if ticket.id in self._spent:
                return False
            if len(self._spent) > 1024:
                self._spent = {k: exp for k, exp in self._spent.items() if exp > now}
            self._spent[ticket.id] = ticket.expires
            return True
