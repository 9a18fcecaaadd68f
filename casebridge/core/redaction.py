"""What never reaches a log line: the secrets some URLs carry in their path (setup and
invitation links, external share links, password-reset keys), and the tracebacks of refusals.

Both the application's access log (gunicorn) and Django's request log pass through here; the
transfer server logs no paths at all."""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

# Each route whose path segment after the prefix is a bearer secret: whoever reads it can use it.
_SECRET_SEGMENT = re.compile(
    r"^(/(?:setup|invitations|s)/|/accounts/password/reset/key/|/accounts/confirm-email/)[^/?#]+"
)
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """`path` with the secret segment of a secret-bearing route replaced."""
    return _SECRET_SEGMENT.sub(lambda m: m.group(1) + REDACTED, path)


class AccessLogger(Logger):
    """gunicorn's logger, writing access lines with secret path segments redacted."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own error lines name the request too ("Error handling request /s/<token>/").
        for handler in self.error_log.handlers:
            handler.addFilter(_PathArguments())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("U", "r", "{raw_uri}e"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_path(atoms[key]) if key == "U" else _redact_request_line(atoms[key])
        return atoms


def _redact_request_line(line: str) -> str:
    method, _, rest = line.partition(" ")
    target, _, protocol = rest.partition(" ")
    return " ".join(p for p in (method, redact_path(target), protocol) if p)


class _PathArguments(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


class RequestLogFilter(logging.Filter):
    """For django.request: a refusal (4xx) is one line, never a traceback (a scanner would fill
    the log with them), and no line carries a secret path segment. Server errors keep their
    traceback: someone has to fix them."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and status < 500:
            record.exc_info = None
            record.exc_text = None
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True
