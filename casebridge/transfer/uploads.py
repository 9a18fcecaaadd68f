"""tus request bodies for uploads whose Location points here: /u/<upload id>.

PATCH: the application leases the upload to this request (checking the client's own credentials,
CSRF, role, ownership, offset and headers exactly as for a PATCH sent to it) and hands over what
continuing the upload takes; the body is hashed, sealed and staged here by the same function the
application would run (kernel/appending.py), into the staging file on a shared filesystem or, on
an object store, into parts through the presigned URLs the lease carried; the application then
commits it, on the lease token alone, and its answer is the client's answer. HEAD and DELETE
are passed to the application as they are. The browser's uploader runs on the application's
origin, so answers carry CORS headers for that origin only, with credentials (its session
cookie) allowed.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from casebridge.kernel import hashing, holders
from casebridge.kernel.appending import (
    Checkpoint,
    Continuation,
    LeaseLost,
    TypeRefused,
    UploadError,
    append_body,
    parse_checksum,
)
from casebridge.kernel.backends import NoRoom, StorageError
from casebridge.kernel.request_body import body_reader
from casebridge.kernel.staging import FileStaging, PartStaging, StagedFile, StagingConflict, StagingLost
from casebridge.transfer.appclient import CLIENT_ADDRESS_HEADER, Call, Reply
from casebridge.transfer.remote import PresignedParts

log = logging.getLogger("casebridge.transfer")

UPLOAD_PATH = re.compile(r"^/u/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")

# What the client says that the application must hear (credentials, CSRF, tus headers).
FORWARDED = (
    "Authorization",
    "Cookie",
    "X-CSRFToken",
    "Origin",
    "Sec-Fetch-Site",
    "Tus-Resumable",
    "Upload-Offset",
    "Upload-Checksum",
    "User-Agent",
)
REASONS = {**http.client.responses, 460: "Checksum Mismatch"}
NOT_RELAYED = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
TUS_HEADERS = "Upload-Offset, Upload-Length, Upload-Expires, Tus-Resumable, Tus-Version, CaseBridge-File-Id"
ALLOWED_HEADERS = (
    "Content-Type, Tus-Resumable, Upload-Offset, Upload-Checksum, Upload-Length, Upload-Metadata, "
    "X-CSRFToken, X-Requested-With, Authorization"
)


class UploadDoor:
    def __init__(self, call: Call, staging: FileStaging | None, origin: str) -> None:
        """`staging`: the staging files, when the blobs are on a filesystem this process shares."""
        self.call = call
        self.staging = staging
        self.origin = origin.rstrip("/")

    def __call__(self, environ: dict[str, Any], start_response: Any, upload_id: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if method == "OPTIONS":
            return self._preflight(environ, start_response)
        try:
            return self._serve(environ, start_response, upload_id, method)
        except (OSError, http.client.HTTPException):
            # The application did not answer (restarting, overloaded). tus clients retry a 503
            # and ask for the offset first; what this request staged past it is overwritten.
            log.warning("upload %s: the application did not answer", upload_id)
            reply = Reply(
                503,
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "5"), ("Tus-Resumable", "1.0.0")],
                b"CaseBridge is not answering right now; the upload will resume.\n",
            )
            return self._relay(environ, start_response, reply)

    def _serve(self, environ: dict[str, Any], start_response: Any, upload_id: str, method: str) -> Iterable[bytes]:
        forwarded = self._forwarded(environ)
        if method in ("HEAD", "DELETE"):
            reply = self.call(method, f"/api/v1/uploads/{upload_id}", forwarded, b"")
            return self._relay(environ, start_response, reply)
        if method == "PATCH":
            return self._patch(environ, start_response, upload_id, forwarded)
        reply = Reply(405, [("Allow", "HEAD, PATCH, DELETE, OPTIONS")], b"")
        return self._relay(environ, start_response, reply)

    # --- PATCH ------------------------------------------------------------------------------
    def _patch(
        self, environ: dict[str, Any], start_response: Any, upload_id: str, forwarded: dict[str, str]
    ) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            reply = Reply(400, [("Content-Type", "text/plain")], b"Content-Length must be a number.\n")
            return self._relay(environ, start_response, reply)
        with holders.writing(upload_id) as mine:
            if not mine:  # another request here is writing it: no need to ask
                reply = Reply(
                    423,
                    [("Content-Type", "text/plain; charset=utf-8"), ("Tus-Resumable", "1.0.0")],
                    b"Another request is writing to this upload; retry shortly.\n",
                )
                return self._relay(environ, start_response, reply)
            return self._leased_patch(environ, start_response, upload_id, forwarded, length)

    def _leased_patch(
        self, environ: dict[str, Any], start_response: Any, upload_id: str, forwarded: dict[str, str], length: int
    ) -> Iterable[bytes]:
        base = f"/api/v1/uploads/{upload_id}/handover"
        terms = {
            "CaseBridge-Body-Type": environ.get("CONTENT_TYPE", ""),
            "CaseBridge-Body-Length": str(length),
            # This process, which is not writing the upload now: a lease it left behind is stale,
            # and once it dies, the lease it takes now is broken at once (kernel/holders.py).
            "CaseBridge-Lease-Holder": holders.this_process(),
        }
        held = hashing.held_offset(upload_id)
        if held is not None:  # else an object store's lease lets this request read back what was staged
            terms["CaseBridge-Hasher-Offset"] = str(held)
        lease = self.call("POST", f"{base}/lease", {**forwarded, **terms}, b"")
        if lease.status != 200:  # refused before a byte of the body was read
            return self._relay(environ, start_response, lease)
        state = json.loads(lease.body)
        token = state.pop("token")
        plan = state.pop("parts", None)
        cont = Continuation.from_wire(state)
        remote = PresignedParts(plan) if plan else None
        staging: PartStaging | StagedFile | None = None
        if remote is not None:
            staging = PartStaging(remote, int(plan["size"]))
        elif self.staging is not None:
            staging = StagedFile(self.staging, cont.upload_id)
        # After the lease, the lease token speaks for this request: no client credentials again.
        leased = {CLIENT_ADDRESS_HEADER: forwarded[CLIENT_ADDRESS_HEADER]}
        checksum_header = environ.get("HTTP_UPLOAD_CHECKSUM")

        def renew(checkpoint: Checkpoint | None) -> None:
            body = {"token": token, **({"checkpoint": checkpoint.to_wire()} if checkpoint else {})}
            try:
                reply = self.call("POST", f"{base}/renew", leased, json.dumps(body).encode())
            except (OSError, http.client.HTTPException):
                # The application is restarting: carry on, the lease outlives a few missed renewals
                # and the commit at the end tells whether this body counts.
                log.warning("upload %s: the lease could not be renewed", upload_id)
                return
            if reply.status != 204:
                raise LeaseLost("the lease was taken over")

        outcome: dict[str, Any]
        appended = None
        try:
            if staging is None:
                raise StorageError("this transfer server cannot reach the upload's staging")
            appended = append_body(
                cont,
                stage=lambda chunks, release, durable: staging.append(cont.ciphertext_offset, chunks, release, durable),
                read_staged=staging.read_range,
                body=body_reader(environ, length, environ["wsgi.input"].read),
                content_length=length,
                checksum=parse_checksum(checksum_header) if checksum_header else None,
                renew=renew,
                reserve=staging.reserve if isinstance(staging, StagedFile) else None,
            )
            outcome = {"outcome": "appended", **appended.to_wire()}
        except TypeRefused as exc:
            outcome = {"outcome": "type_refused", "message": str(exc)}
        except LeaseLost:
            outcome = {"outcome": "lease_lost"}
        except StagingConflict:
            outcome = {"outcome": "conflict"}
        except StagingLost:
            outcome = {"outcome": "staging_lost"}
        except UploadError:
            outcome = {"outcome": "checksum_mismatch"}
        except NoRoom:
            outcome = {"outcome": "no_room"}
        except StorageError as exc:
            log.warning("upload %s: the staging refused the body: %s", cont.upload_id, exc)
            outcome = {"outcome": "failed"}
        except Exception:
            log.exception("upload %s: the body could not be staged", cont.upload_id)
            outcome = {"outcome": "failed"}
        finally:
            if remote is not None:
                remote.close()
        reply = self.call("POST", f"{base}/commit", leased, json.dumps({"token": token, **outcome}).encode())
        if appended is not None and not appended.complete and reply.status == 204:
            hashing.remember(cont.upload_id, appended.offset, appended.hasher)
        if appended is not None and appended.complete:
            hashing.forget(cont.upload_id)
        # A body not read to its end is drained after this answer went out (core/request_body.drain).
        return self._relay(environ, start_response, reply)

    # --- answers ------------------------------------------------------------------------------
    def _forwarded(self, environ: dict[str, Any]) -> dict[str, str]:
        headers = {}
        for name in FORWARDED:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            if value is not None:
                headers[name] = value
        headers[CLIENT_ADDRESS_HEADER] = environ.get("REMOTE_ADDR", "")
        return headers

    def _cors(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        if environ.get("HTTP_ORIGIN", "").rstrip("/") != self.origin:
            return []
        return [
            ("Access-Control-Allow-Origin", self.origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Expose-Headers", TUS_HEADERS),
            ("Vary", "Origin"),
        ]

    def _preflight(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("Content-Length", "0"), ("Cache-Control", "no-store"), *self._cors(environ)]
        if len(headers) > 2:
            headers += [
                ("Access-Control-Allow-Methods", "PATCH, HEAD, DELETE, OPTIONS"),
                ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
                ("Access-Control-Max-Age", "600"),
            ]
        start_response("204 No Content", headers)
        return []

    def _relay(self, environ: dict[str, Any], start_response: Any, reply: Reply) -> list[bytes]:
        headers = [(k, v) for k, v in reply.headers if k.lower() not in NOT_RELAYED]
        headers += self._cors(environ)
        body = b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{reply.status} {REASONS.get(reply.status, 'Status')}", headers)
        return [body]
