"""gunicorn with CaseBridge's TLS settings, for any WSGI callable: the application's server and
the transfer server alike (this module imports no Django)."""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from casebridge.kernel.request_body import DrainedBody
from casebridge.kernel.tls import harden


def _ssl_context(config: Any, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return harden(default_factory())


def _leave_at_once(worker: Any) -> None:
    """gunicorn's `worker_int` hook: a worker got SIGINT or SIGQUIT (Ctrl-C, a quick shutdown).
    gunicorn then calls sys.exit(), and Python waits at exit for every request thread, including
    one blocked on an idle connection (a browser's preconnect), until the arbiter SIGKILLs the
    worker after graceful_timeout ("Perhaps out of memory?"). A quick shutdown abandons requests
    in flight anyway: leave now. SIGTERM, the graceful stop, does not come here and still drains."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class HardenedServer(BaseApplication):
    """gunicorn with `options` and CaseBridge's TLS settings, serving what `load()` returns."""

    def __init__(self, options: dict[str, Any], load: Callable[[], Any]) -> None:
        self.options = options
        self._load = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("ssl_context", _ssl_context)
        self.cfg.set("worker_int", _leave_at_once)

    def load(self) -> Any:
        # Refused bodies are drained after their answer, so clients read it (request_body.drain).
        return DrainedBody(self._load())
