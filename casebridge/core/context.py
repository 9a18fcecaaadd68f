"""Who is acting, from where, in which request: read by the audit log and the policy."""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest


@dataclass
class RequestContext:
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ip: str | None = None
    user_agent: str = ""
    # Set by the API token middleware when the caller is a token, not a session.
    api_token: Any = None
    # Set when the acting member holds an active emergency-access grant in the request's
    # organization: every event they cause is flagged with it.
    emergency_access: Any = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "casebridge_request_context", default=None
)


def current() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def deactivate(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a trusted proxy rewrites
    # it, and then the proxy sets REMOTE_ADDR through SECURE_PROXY_SSL_HEADER deployments.
    return request.META.get("REMOTE_ADDR") or None


def from_request(request: HttpRequest) -> RequestContext:
    return RequestContext(
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
    )
