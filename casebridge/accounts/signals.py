"""Audit receivers for sign-in, MFA and password events raised by Django and allauth."""

from __future__ import annotations

import time
from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth import signals as auth_signals
from django.contrib.auth.models import AnonymousUser
from django.dispatch import receiver

from casebridge.audit.api import record
from casebridge.audit.models import Outcome


@receiver(auth_signals.user_logged_in)
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from casebridge.accounts.middleware import SESSION_AUTH_AT, SESSION_SEEN_AT

    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SESSION_AUTH_AT] = now
        request.session[SESSION_SEEN_AT] = now
    record("auth.login.succeeded", actor=user)


@receiver(auth_signals.user_login_failed)
def _login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    attempted = str(credentials.get("email") or credentials.get("username") or "")[:254]
    record(
        "auth.login.failed",
        actor=AnonymousUser(),
        outcome=Outcome.FAILURE,
        actor_label=attempted,
        details={"factor": "password"},
    )


@receiver(auth_signals.user_logged_out)
def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record("auth.logout", actor=user)


@receiver(account_signals.password_changed)
def _password_changed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record("auth.password.changed", actor=user, target=user)


@receiver(account_signals.password_reset)
def _password_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record("auth.password.reset", actor=user, target=user)


@receiver(account_signals.password_set)
def _password_set(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record("auth.password.set", actor=user, target=user)


@receiver(mfa_signals.authenticator_added)
def _mfa_added(sender: Any, request: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    action = (
        "auth.mfa.recovery_codes_generated"
        if authenticator.type == Authenticator.Type.RECOVERY_CODES
        else "auth.mfa.enrolled"
    )
    record(action, actor=user, target=authenticator, details={"type": authenticator.type})


@receiver(mfa_signals.authenticator_reset)
def _mfa_reset(sender: Any, request: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    record(
        "auth.mfa.recovery_codes_generated",
        actor=user,
        target=authenticator,
        details={"type": authenticator.type},
    )


@receiver(mfa_signals.authenticator_removed)
def _mfa_removed(sender: Any, request: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    record("auth.mfa.removed", actor=user, target=authenticator, details={"type": authenticator.type})


@receiver(mfa_signals.authenticator_used)
def _mfa_used(sender: Any, request: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    if kwargs.get("reauthenticated"):
        record("auth.reauthenticated", actor=user, details={"type": authenticator.type})
    if authenticator.type == Authenticator.Type.RECOVERY_CODES:
        record("auth.recovery_code.used", actor=user, target=authenticator)


@receiver(mfa_signals.authentication_failed)
def _mfa_failed(sender: Any, request: Any, user: Any, authenticator: Authenticator, **kwargs: Any) -> None:
    record(
        "auth.mfa.failed",
        actor=user,
        outcome=Outcome.FAILURE,
        details={
            "type": authenticator.type,
            "reauthentication": bool(kwargs.get("reauthentication")),
        },
    )
