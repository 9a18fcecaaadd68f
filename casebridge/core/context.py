"""Who is acting, from where, in which request: read by the audit log and the policy."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
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
    # An event the request owes that may share a commit: the API token middleware leaves its
    # `token.used` here (a callable that makes the entry, and the token's last-used time, inside
    # the transaction it is given to). The request's first audited transaction that commits on
    # its own carries it (audit/api.py); otherwise the middleware records it before responding.
    owed_event: Callable[[], dict[str, Any]] | None = None
    # Work that may wait until the response has been sent (the audit sealer): None outside a
    # request the middleware serves (run it at once); a list the middleware runs after the response.
    after_response: list[Callable[[], None]] | None = None


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "casebridge_request_context", default=None
)


def current() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def deactivate(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)


def after_response(work: Callable[[], None]) -> None:
    """Run `work` once the current request's response has been sent, or now when there is no
    such request (a command, a job, a test outside the middleware). Once per request: asking
    again for the same callable adds nothing."""
    ctx = _current.get()
    if ctx is None or ctx.after_response is None:
        work()
    elif work not in ctx.after_response:
        ctx.after_response.append(work)


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is trivially forged unless a trusted proxy rewrites
    # it, and then the proxy sets REMOTE_ADDR through SECURE_PROXY_SSL_HEADER deployments.
    return request.META.get("REMOTE_ADDR") or None


def from_request(request: HttpRequest) -> RequestContext:
    return RequestContext(
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:400],
    )
