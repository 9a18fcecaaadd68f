"""`python -m casebridge.transfer`: the transfer server, started by `casebridge serve`.

One gunicorn worker with threads (tickets are spent through the application's database, so single
use holds across restarts and servers), TLS with
the application's certificate and settings. The ticket key arrives on standard input, never in
the command line or the environment, where other processes could read it.
"""

from __future__ import annotations

import argparse
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

from casebridge.kernel.backends import StorageError, store_from_url
from casebridge.kernel.backends.filesystem import FileSystemStore
from casebridge.kernel.server import HardenedServer
from casebridge.kernel.staging import FileStaging
from casebridge.kernel.tickets import ApplicationLedger, SpentTickets, TicketLedger
from casebridge.transfer.app import TransferApp
from casebridge.transfer.appclient import AppClient
from casebridge.transfer.uploads import UploadDoor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m casebridge.transfer",
        description="Move file bytes for CaseBridge: downloads it authorized (sealed tickets) and tus "
        "upload bodies it leases (--app-url). Reads the 32-byte ticket key and, for uploads, the "
        "internal key, hex-encoded, one per line, from standard input.",
    )
    parser.add_argument("--bind", required=True, help="host:port to listen on")
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument(
        "--storage-url",
        required=True,
        help="where the ciphertext is (CASEBRIDGE_STORAGE_URL); for s3: stores, tickets and upload leases "
        "carry presigned URLs",
    )
    parser.add_argument("--threads", type=int, default=16, help="concurrent transfers (default 16)")
    parser.add_argument(
        "--app-url",
        default="",
        help="the application on this host (https://127.0.0.1:8443), asked about uploads; none: downloads only",
    )
    parser.add_argument("--app-host", default="", help="Host header for the application (its public host:port)")
    parser.add_argument("--app-origin", default="", help="the application's origin, allowed to upload from a browser")
    parser.add_argument("--control-socket", default="", help="gunicorn's control socket path (default: none)")
    return parser.parse_args(argv)


def _key(line: str) -> bytes | None:
    try:
        key = bytes.fromhex(line.strip())
    except ValueError:
        return None
    return key if len(key) == 32 else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    key, internal = _key(sys.stdin.readline()), _key(sys.stdin.readline())
    if key is None or (args.app_url and internal is None):
        sys.exit(
            "transfer server: standard input must hold the 32-byte ticket key in hex, then (with "
            "--app-url) the 32-byte internal key, one per line"
        )
    store = None
    if args.storage_url.startswith("file:"):  # other stores: tickets carry presigned URLs
        try:
            store = store_from_url(args.storage_url)
        except StorageError as exc:
            sys.exit(f"transfer server: {exc}")
    uploads = None
    # Without an application to ask (tests of downloads alone), tickets are spent in memory.
    spent: TicketLedger = SpentTickets()
    if args.app_url and internal is not None:
        with open(args.certfile) as handle:
            pinned = ssl.PEM_cert_to_DER_cert(handle.read())
        client = AppClient(args.app_url, args.app_host or urlsplit(args.app_url).netloc, internal, pinned)
        staging = FileStaging(store) if isinstance(store, FileSystemStore) else None
        uploads = UploadDoor(client, staging, args.app_origin)
        spent = ApplicationLedger(client)
    options: dict[str, Any] = {
        "bind": [args.bind],
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "workers": 1,
        "worker_class": "gthread",
        "threads": args.threads,
        "timeout": 120,
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": "-",
        # The path holds the ticket: it is left out, like query strings.
        "access_log_format": '%(h)s "%(m)s" %(s)s %(B)s %(M)sms transfer',
        "forwarded_allow_ips": "",
        "proxy_allow_ips": "",
        "proc_name": "casebridge-transfer",
    }
    if args.control_socket:
        options["control_socket"] = args.control_socket
    else:  # gunicorn's default is one path per user, shared by every server it runs
        options["control_socket_disable"] = True
    app = TransferApp(key, store, spent=spent, uploads=uploads)
    HardenedServer(options, lambda: app).run()
