"""Every URL is declared public, signed-in, token-only or protected by a policy permission."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from casebridge.access.guards import ACCESS_ATTR

# allauth's own views: each either serves signing in (public by nature) or checks for a signed-in
# user itself. Listed by name so a new allauth view cannot slip in unreviewed.
ALLAUTH_PUBLIC = {
    "account_login",
    "account_logout",
    "account_inactive",
    "account_reset_password",
    "account_reset_password_done",
    "account_reset_password_from_key",
    "account_reset_password_from_key_done",
    "account_signup",  # closed: the adapter refuses every sign-up
    "account_confirm_email",
    "account_email_verification_sent",
    "account_confirm_login_code",
    "account_request_login_code",
    "account_confirm_password_reset_code",
    "mfa_authenticate",
    "mfa_login_webauthn",
    "mfa_signup_webauthn",
    "account_verify_phone",
    "account_confirm_email_verification_code",
    "account_confirm_phone_verification_code",
}
ALLAUTH_SIGNED_IN = {
    "account_email",
    "account_change_password",
    "account_set_password",
    "account_reauthenticate",
    "account_change_phone",
    "mfa_index",
    "mfa_reauthenticate",
    "mfa_activate_totp",
    "mfa_deactivate_totp",
    "mfa_view_recovery_codes",
    "mfa_download_recovery_codes",
    "mfa_generate_recovery_codes",
    "mfa_add_webauthn",
    "mfa_list_webauthn",
    "mfa_remove_webauthn",
    "mfa_edit_webauthn",
    "mfa_reauthenticate_webauthn",
    "usersessions_list",
}
# allauth views turned off by our settings: they answer 403 (tested in test_reauthentication.py).
ALLAUTH_DISABLED = {
    "account_request_reauthentication_code",  # ACCOUNT_REAUTHENTICATION_METHODS has no "code"
    "account_confirm_reauthentication_code",
}


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def test_every_view_is_public_or_protected_by_the_policy() -> None:
    unprotected = []
    for route, pattern in _walk(get_resolver().url_patterns):
        callback = pattern.callback
        module = getattr(callback, "__module__", "")
        if hasattr(callback, ACCESS_ATTR):
            continue
        if module.startswith("allauth.") and pattern.name in ALLAUTH_PUBLIC | ALLAUTH_SIGNED_IN | ALLAUTH_DISABLED:
            continue
        if module.startswith("django.contrib.staticfiles"):
            continue
        unprotected.append(f"{route} ({pattern.name}, {module})")
    assert unprotected == [], "views neither public nor protected:\n" + "\n".join(unprotected)


def test_organization_views_are_all_protected_by_a_permission() -> None:
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("o/<slug:org>/"):
            access = getattr(pattern.callback, ACCESS_ATTR, None)
            assert access not in (None, "public", "signed_in"), f"{route} must check a permission"
