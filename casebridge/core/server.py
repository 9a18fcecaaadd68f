"""The embedded HTTPS server: gunicorn (threaded workers) with CaseBridge's TLS settings.

Threaded workers let a long upload or download occupy a thread, not a whole process, and the
WSGI interface streams our sync iterators without buffering them (see DESIGN.md, "Serving").
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from casebridge.core.request_body import DrainedBody
from casebridge.core.tls import harden


def _ssl_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return harden(default_factory())


class HardenedServer(BaseApplication):
    """gunicorn with `options` and CaseBridge's TLS settings, serving what `load()` returns.

    Also the transfer server's (casebridge/transfer/server.py): this module imports no Django."""

    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("ssl_context", _ssl_context)

    def load(self) -> Any:
        # Refused bodies are drained after their answer, so clients read it (request_body.drain).
        return DrainedBody(self._load())


def _application() -> Any:
    from casebridge.wsgi import application

    return application


def serve(*, binds: list[str], certfile: str, keyfile: str, workers: int, threads: int, home: str) -> None:
    HardenedServer(
        {
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
            # Paths and status only: our URLs never carry PHI, and query strings are left out.
            "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
            "forwarded_allow_ips": "",
            "proxy_allow_ips": "",
        },
        _application,
    ).run()
