"""`python -m casebridge.transfer`: the transfer server, started by `casebridge serve`.

One gunicorn worker with threads (single-use tickets are remembered in that one process), TLS with
the application's certificate and settings. The ticket key arrives on standard input, never in
the command line or the environment, where other processes could read it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from casebridge.core.server import HardenedServer
from casebridge.transfer.app import TransferApp
from casebridge.vault.backends import StorageError, store_from_url


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m casebridge.transfer",
        description="Serve file downloads that CaseBridge has authorized, from sealed tickets. "
        "Reads the 32-byte ticket key, hex-encoded, as the first line of standard input.",
    )
    parser.add_argument("--bind", required=True, help="host:port to listen on")
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--storage-url", required=True, help="where the ciphertext is (CASEBRIDGE_STORAGE_URL)")
    parser.add_argument("--threads", type=int, default=16, help="concurrent transfers (default 16)")
    parser.add_argument("--control-socket", default="", help="gunicorn's control socket path (default: none)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        key = bytes.fromhex(sys.stdin.readline().strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        sys.exit("transfer server: standard input must start with the 32-byte ticket key in hex")
    try:
        store = store_from_url(args.storage_url)
    except StorageError as exc:
        sys.exit(f"transfer server: {exc}")
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
    app = TransferApp(key, store)
    HardenedServer(options, lambda: app).run()
