"""The embedded HTTPS server: gunicorn (threaded workers) with CaseBridge's TLS settings.

Threaded workers let a long upload or download occupy a thread, not a whole process, and the
WSGI interface streams our sync iterators without buffering them (docs/performance.md). The TLS
hardening and worker hooks are the kernel's (casebridge/kernel/server.py), shared with the
transfer server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from casebridge.core.redaction import AccessLogger
from casebridge.kernel.server import HardenedServer


def _application() -> Any:
    from casebridge.wsgi import application

    return application


def serve(
    *,
    binds: list[str],
    certfile: str,
    keyfile: str,
    workers: int,
    threads: int,
    home: str,
    when_ready: Callable[[Any], None] | None = None,
) -> None:
    """`when_ready(arbiter)`: called in the arbiter's main thread once it serves, after gunicorn
    installed its signal handlers (`casebridge serve` chains its own shutdown step to them)."""
    hooks = {"when_ready": when_ready} if when_ready is not None else {}
    HardenedServer(
        {
            **hooks,
            # One control socket per installation, not one shared by every gunicorn of the user.
            "control_socket": f"{home}/gunicorn.ctl",
            "bind": binds,
            "certfile": certfile,
            "keyfile": keyfile,
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 120,
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": "-",
            # Secret path segments (setup, invitation and share links) redacted: core/redaction.py.
            "logger_class": AccessLogger,
            # Paths and status only: our URLs never carry PHI, and query strings are left out.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
            "forwarded_allow_ips": "",
            "proxy_allow_ips": "",
        },
        _application,
    ).run()
