"""Personas and helpers shared by every app's tests (healthchecks' hc/test.py in spirit)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.test import Client

from casebridge.access.roles import Role
from casebridge.accounts.models import User
from casebridge.orgs.models import Membership, Organization, OrgKind

PASSWORD = "correct horse battery staple"  # noqa: S105  (test fixture)


def make_user(email: str, *, password: str = PASSWORD, mfa: bool = True, full_name: str = "") -> User:
    user = User.objects.create_user(email, password, full_name=full_name or email.split("@")[0].title())
    if mfa:
        TOTP.activate(user, generate_totp_secret())
    return user


def _decrypted_secret(user: User) -> str:
    from casebridge.accounts.adapters import decrypt_secret

    auth = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
    return decrypt_secret(auth.data["secret"])


def totp_code(user: User, offset: int = 0) -> str:
    return totp_code_at_counter(user, int(time.time()) // 30 + offset)


def totp_code_at_counter(user: User, counter: int) -> str:
    """The code of the 30 s step numbered `counter` (Unix time // 30)."""
    return format_hotp_value(hotp_value(_decrypted_secret(user), counter))


_CSRF_TOKEN = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


def without_csrf_token(content: bytes) -> bytes:
    """A page without its CSRF token, which is masked differently on every render: two pages that
    must read identically (a 404 for "not yours" and for "does not exist") differ by it alone."""
    return _CSRF_TOKEN.sub(b"", content)


def make_org(name: str, kind: str = OrgKind.PRACTICE, slug: str = "") -> Organization:
    from django.utils.text import slugify

    return Organization.objects.create(name=name, kind=kind, slug=slug or slugify(name))


def add_member(org: Organization, user: User, role: str = Role.STAFF) -> Membership:
    return Membership.objects.create(organization=org, user=user, role=role)


def signed_in_client(user: User, *, reauthenticated: bool = True) -> Client:
    """A test client with a session for `user`, as if they had just passed password and MFA."""
    client = Client()
    client.force_login(user)
    if reauthenticated:
        mark_reauthenticated(client)
    return client


def mark_reauthenticated(client: Client) -> None:
    session = client.session
    session["account_authentication_methods_user"] = session["_auth_user_id"]
    session["account_authentication_methods"] = [{"method": "password", "at": time.time(), "reauthenticated": True}]
    session.save()


@dataclass
class Personas:
    """One practice with a member in every role, an outsider practice and its owner, a lab."""

    practice: Organization
    other_practice: Organization
    lab: Organization
    members: dict[str, User]
    outsider: User
    deactivated: User
    lab_manager: User


def build_personas() -> Personas:
    practice = make_org("Smile Dental", OrgKind.PRACTICE)
    other = make_org("Other Dental", OrgKind.PRACTICE)
    lab = make_org("Precision Lab", OrgKind.LAB)
    members = {}
    for role in Role.values:
        user = make_user(f"{role}@smile.test")
        membership = add_member(practice, user, role)
        members[role] = user
        if role == Role.CLINICIAN:  # the practice's doctor: may be named on cases
            membership.is_prescriber, membership.license_state, membership.license_number = True, "IL", "019-012345"
            membership.save()
    outsider = make_user("owner@other.test")
    add_member(other, outsider, Role.OWNER)
    deactivated = make_user("gone@smile.test")
    membership = add_member(practice, deactivated, Role.CLINICIAN)
    membership.is_active = False
    membership.save()
    lab_manager = make_user("manager@lab.test")
    add_member(lab, lab_manager, Role.LAB_MANAGER)
    return Personas(practice, other, lab, members, outsider, deactivated, lab_manager)


def require(available: bool, what: str, install: str) -> None:
    """Skip locally when a tool a test needs is missing, but never under CI, where a skip would
    hide a gap: there it fails, naming what to install (.ci/run installs it)."""
    import pytest

    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true ({install})")
    pytest.skip(f"{what} tests skipped: not installed here ({install})")
