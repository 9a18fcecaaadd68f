"""Account pages: first password, MFA enrollment gate, security settings, tokens, sessions."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from allauth.account.decorators import reauthentication_required
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from casebridge.access.guards import SESSION_IDLE, public, signed_in
from casebridge.access.policy import organizations_of, resolve, scoped_get
from casebridge.access.requests import principal_of, user_of
from casebridge.accounts import actions
from casebridge.accounts.forms import ApiTokenForm, NotationForm, PreferencesForm, SetPasswordForm
from casebridge.accounts.mfa import has_second_factor
from casebridge.accounts.middleware import SESSION_AUTH_AT, SESSION_SEEN_AT, problem
from casebridge.accounts.models import ApiToken, Notation, NotifyTopic, User
from casebridge.accounts.user_agents import describe_user_agent
from casebridge.api.auth import api_actor
from casebridge.orgs.models import Organization


@public
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


@public
def setup_password(request: HttpRequest, token: str) -> HttpResponse:
    link = actions.find_setup_link(token)
    if link is None:
        return render(request, "accounts/setup_invalid.html", status=404)
    form = SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            actions.use_setup_link(token, form.cleaned_data["password"])
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("password", message)
        else:
            messages.success(request, "Password set. Sign in, then set up your second factor.")
            return redirect("account_login")
    return render(request, "accounts/setup_password.html", {"form": form, "email": link.user.email})


@signed_in
def mfa_required(request: HttpRequest) -> HttpResponse:
    if has_second_factor(_user(request)):
        return redirect("home")
    return render(request, "accounts/mfa_required.html")


def _user(request: HttpRequest) -> User:
    return user_of(request)


@signed_in
def security(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    sessions = UserSession.objects.purge_and_list(user)
    orgs = list(organizations_of(user))
    token_form = ApiTokenForm(organizations=[(o.slug, o.name) for o in orgs])
    return render(
        request,
        "accounts/security.html",
        {
            "sessions": [(s, describe_user_agent(s.user_agent)) for s in sessions],
            "authenticators": Authenticator.objects.filter(user=user).order_by("type", "created_at"),
            "tokens": ApiToken.objects.filter(user=user).select_related("organization").order_by("-created_at"),
            "token_form": token_form,
            "new_token": request.session.pop("cb_new_token", None),
            "preferences_form": PreferencesForm(
                initial={
                    "full_name": user.full_name,
                    "tooth_notation": user.tooth_notation,
                    **{topic: getattr(user, topic) for topic in NotifyTopic.values},
                }
            ),
        },
    )


@require_POST
@signed_in
def preferences(request: HttpRequest) -> HttpResponse:
    form = PreferencesForm(request.POST)
    if form.is_valid():
        actions.save_preferences(_user(request), form.cleaned_data)
        messages.success(request, "Preferences saved.")
    else:
        messages.error(request, "Check the highlighted fields.")
    return redirect("security")


@require_POST
@signed_in
def notation_preference(request: HttpRequest) -> HttpResponse:
    """Save the tooth numbering from the switch on the case form (htmx): the form stays as it
    is, its labels were already rewritten in the page; this answers the line that confirms it."""
    form = NotationForm(request.POST)
    if not form.is_valid():
        return HttpResponse("Choose Universal, FDI or Palmer numbering.", status=400, content_type="text/plain")
    notation = form.cleaned_data["tooth_notation"]
    actions.save_tooth_notation(_user(request), notation)
    return HttpResponse(
        f"Saved: your charts use {Notation(notation).label} numbering from now on.", content_type="text/plain"
    )


@require_POST
@signed_in
@reauthentication_required
def token_create(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ApiTokenForm(request.POST, organizations=[(o.slug, o.name) for o in organizations_of(user)])
    if not form.is_valid():
        messages.error(request, "Choose an organization, a name and at least one scope.")
        return redirect("security")
    org = scoped_get(organizations_of(user), slug=form.cleaned_data["organization"])
    if resolve(user, org) is None:
        messages.error(request, "You are not an active member of that organization.")
        return redirect("security")
    try:
        _token, raw = actions.create_api_token(
            organization=org,
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            days=form.cleaned_data["days"],
            actor=user,
            user=user,
        )
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect("security")
    # Shown once on the next page, then gone: the database keeps only its digest.
    request.session["cb_new_token"] = raw
    return redirect("security")


@require_POST
@signed_in
def token_revoke(request: HttpRequest, token_id: str) -> HttpResponse:
    token = scoped_get(ApiToken.objects.filter(user=_user(request)), pk=token_id)
    actions.revoke_api_token(token, actor=_user(request))
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("security")


@require_POST
@signed_in
def session_end(request: HttpRequest, session_id: str) -> HttpResponse:
    usersession = scoped_get(UserSession.objects.filter(user=_user(request)), pk=session_id)
    if usersession.is_current():
        logout(request)
        return redirect("account_login")
    actions.end_session(usersession, actor=_user(request), reason="ended by user")
    messages.success(request, "That session was signed out.")
    return redirect("security")


@require_POST
@signed_in
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    actions.end_sessions(user, actor=user, reason="log out everywhere", keep_session_key=request.session.session_key)
    logout(request)
    messages.success(request, "You were signed out on every device.")
    return redirect("account_login")


@require_GET
@signed_in
def session_status(request: HttpRequest) -> JsonResponse:
    """Seconds left before idle logoff; reading it does not count as activity."""
    idle = request.session.get(SESSION_IDLE, settings.SESSION_IDLE_DEFAULT_SECONDS)
    seen = request.session.get(SESSION_SEEN_AT, time.time())
    # Rounded up: 0 only once the session has really run out (it is then ended on the next request).
    return JsonResponse({"idle_seconds": idle, "remaining": max(0, math.ceil(seen + idle - time.time()))})


@require_POST
@signed_in
def session_keepalive(request: HttpRequest) -> JsonResponse:
    request.session[SESSION_SEEN_AT] = time.time()
    idle = request.session.get(SESSION_IDLE, settings.SESSION_IDLE_DEFAULT_SECONDS)
    return JsonResponse({"idle_seconds": idle, "remaining": idle})


@api_actor
def api_me(request: HttpRequest) -> HttpResponse:
    """Who this call acts as: the smallest useful call for integrations to test with. The same rule
    as every other endpoint (`api_actor`): a bearer token, or a session past MFA, so the
    interactive docs work signed in as they do for /cases."""
    if request.method not in ("GET", "HEAD"):
        return problem(405, "Method Not Allowed", "Use GET.")
    principal = principal_of(request)
    assert principal is not None  # api_actor: someone is signed in or sent a token
    token = principal.token
    if token is not None:
        organization: Organization | None = token.organization
        expires_at = token.expires_at.isoformat()
    else:
        # The organization a session call acts for is the one last opened in the browser (as for
        # /cases); a person in several organizations who opened none acts for none yet.
        organization = principal.default_organization(request.session.get("current_org", ""))
        started = request.session.get(SESSION_AUTH_AT, time.time())
        expires_at = datetime.fromtimestamp(started + settings.SESSION_ABSOLUTE_SECONDS, tz=UTC).isoformat()
    access = principal.access(organization) if organization is not None else None
    if token is not None and access is None:
        return problem(403, "Forbidden", "This token's owner no longer has access to its organization.")
    return JsonResponse(
        {
            "credential": "token" if token is not None else "session",
            "organization": (
                {"id": str(organization.pk), "slug": organization.slug} if organization is not None else None
            ),
            "actor": {"type": "service" if principal.is_service else "user", "id": str(principal.actor.pk)},
            "role": access.role if access is not None else None,
            # A session is limited by the person's role alone; a token by its scopes too.
            "scopes": token.scopes if token is not None else None,
            "expires_at": expires_at,
        }
    )
