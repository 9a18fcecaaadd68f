"""Request gates: bearer tokens, session lifetime (idle and absolute), mandatory MFA."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from allauth.usersessions.middleware import UserSessionsMiddleware as _AllauthUserSessionsMiddleware
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse

from casebridge.accounts import actions
from casebridge.accounts.mfa import has_second_factor
from casebridge.audit.api import record
from casebridge.core import context

SESSION_AUTH_AT = "cb_auth_at"
SESSION_SEEN_AT = "cb_seen_at"
SESSION_IDLE = "cb_idle_seconds"
# Write the last-activity time at most this often: one session write per request would make
# every page a database write.
SEEN_RESOLUTION_SECONDS = 15

# URL names that pages request on a timer, not on a person's action: they never count as activity,
# so an open page polling for news does not keep an unattended session alive (idle logoff).
PASSIVE_URL_NAMES = frozenset({"session_status", "case_live", "notification_bell"})

# URL names a signed-in person may reach before enrolling a second factor.
ENROLLMENT_URL_NAMES = frozenset(
    {
        "mfa_required",
        "mfa_activate_totp",
        "mfa_add_webauthn",
        "mfa_view_recovery_codes",
        "mfa_download_recovery_codes",
        "mfa_generate_recovery_codes",
        "account_logout",
        "account_reauthenticate",
        "mfa_reauthenticate",
        "session_status",
        "session_keepalive",
        "healthz",
    }
)


def problem(status: int, title: str, detail: str) -> JsonResponse:
    return JsonResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
    )


def _duration(seconds: float) -> str:
    """`8 seconds`, `1 minute`, `15 minutes`: idle limits are whole minutes except in tests."""
    amount, unit = (int(seconds), "second") if seconds < 60 else (int(seconds // 60), "minute")
    return f"{amount} {unit}{'' if amount == 1 else 's'}"


class ApiTokenMiddleware:
    """`Authorization: Bearer cb_...` authenticates API calls; a bad token is refused outright."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.api_token = None  # type: ignore[attr-defined]
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            return self.get_response(request)
        token = actions.authenticate_token(header[len("Bearer ") :].strip())
        if token is None:
            record(
                "token.rejected",
                actor=AnonymousUser(),
                outcome="denied",
                details={"path_kind": "api"},
            )
            response = problem(401, "Unauthorized", "The bearer token is unknown, expired or revoked.")
            response["WWW-Authenticate"] = 'Bearer realm="casebridge", error="invalid_token"'
            return response
        request.api_token = token  # type: ignore[attr-defined]
        request.actor = token.principal  # type: ignore[attr-defined]
        ctx = context.current()
        if ctx is not None:
            ctx.api_token = token
        # Bearer tokens are not sent by browsers on their own, so CSRF does not apply.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        try:
            route = resolve(request.path_info).url_name or "unknown"
        except Resolver404:
            route = "unknown"
        method = request.method or ""
        if ctx is None:
            actions.mark_token_used(token, method=method, path_name=route)
            return self.get_response(request)
        # `token.used` rides in the request's first audited transaction that commits on its own
        # (a download's `file.downloaded`): one commit instead of two (docs/audit.md). A request
        # that records nothing, or only inside a transaction that rolled back, records it here,
        # before its response, as before.
        ctx.owed_event = partial(actions.token_used, token, method=method, path_name=route)
        try:
            return self.get_response(request)
        finally:
            if ctx.owed_event is not None:
                ctx.owed_event = None
                actions.mark_token_used(token, method=method, path_name=route)


class SessionLifetimeMiddleware:
    """Idle automatic logoff (per organization, default 15 min) and an absolute lifetime (12 h)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if getattr(request, "api_token", None) is None and user.is_authenticated:
            now = time.time()
            session = request.session
            auth_at = session.setdefault(SESSION_AUTH_AT, now)
            seen_at = session.get(SESSION_SEEN_AT, now)
            idle_limit = session.get(SESSION_IDLE, settings.SESSION_IDLE_DEFAULT_SECONDS)
            reason = ""
            if now - auth_at > settings.SESSION_ABSOLUTE_SECONDS:
                reason = "absolute"
            elif now - seen_at > idle_limit:
                reason = "idle"
            if reason:
                record("auth.session.expired", actor=user, details={"reason": reason})
                logout(request)
                api = request.path.startswith("/api/")
                if not api:
                    # Kept in the message cookie, so the sign-in page says why even when the page's
                    # own idle timer (a JSON request below) was first to notice.
                    messages.info(
                        request,
                        f"You were signed out after {_duration(idle_limit)} without activity."
                        if reason == "idle"
                        else "Your session reached its maximum length; please sign in again.",
                    )
                timer_paths = (reverse("session_status"), reverse("session_keepalive"))
                if api or request.headers.get("HX-Request") or request.path in timer_paths:
                    return problem(401, "Session ended", "Your session ended; sign in again.")
                return redirect(f"{reverse('account_login')}?next={request.path}")
            # Short idle limits need a finer record of activity than the write-saving default.
            resolution = min(SEEN_RESOLUTION_SECONDS, idle_limit / 4)
            if SESSION_SEEN_AT not in session or (now - seen_at >= resolution and not _is_passive(request)):
                session[SESSION_SEEN_AT] = now
        return self.get_response(request)


def _is_passive(request: HttpRequest) -> bool:
    try:
        return resolve(request.path_info).url_name in PASSIVE_URL_NAMES
    except Resolver404:
        return False


class RequireMFAMiddleware:
    """Nothing beyond enrollment is shown to a signed-in person without a second factor."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if getattr(request, "api_token", None) is None and user.is_authenticated:
            request.actor = user  # type: ignore[attr-defined]
            if not request.path.startswith(settings.STATIC_URL) and not has_second_factor(user):
                try:
                    name = resolve(request.path_info).url_name
                except Resolver404:
                    name = None
                if name not in ENROLLMENT_URL_NAMES:
                    if request.path.startswith("/api/"):
                        return problem(403, "Second factor required", "Enroll a second factor first.")
                    return redirect("mfa_required")
        elif not hasattr(request, "actor"):
            request.actor = None  # type: ignore[attr-defined]
        return self.get_response(request)


class UserSessionsMiddleware(_AllauthUserSessionsMiddleware):
    """allauth's record of where a person is signed in (one database write per request), except
    for the frames a viewer fetches by the hundred for a page that was itself recorded: a write
    each would cost a CBCT's worth of writes per opening."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/dicomweb/") and "/frames/" in request.path:
            response: HttpResponse = self.get_response(request)
            return response
        return super().__call__(request)
