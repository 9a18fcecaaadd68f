"""Browser tests: a real Chromium drives sign-in, mandatory MFA, passkeys and idle logoff."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from playwright.sync_api import Page, expect

from casebridge.access.roles import Role
from casebridge.accounts.models import User
from casebridge.core.browser_testing import (
    assert_no_inline_scripts,
    enter_mfa_code,
    screenshot,
    sign_in,
    sign_in_with_password,
    wait_for_room_in_totp_window,
)
from casebridge.core.testing import add_member, make_org, make_user

pytestmark = pytest.mark.browser


def fresh_totp(secret: str, *, after_counter: int | None = None) -> tuple[str, int]:
    counter = wait_for_room_in_totp_window(after_counter)
    return format_hotp_value(hotp_value(secret, counter)), counter


def wrong_code(*correct: str) -> str:
    for candidate in ("000000", "111111", "222222"):
        if candidate not in correct:
            return candidate
    raise AssertionError("unreachable")


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))


@pytest.fixture
def owner_and_org(transactional_db: None) -> tuple[User, object]:
    org = make_org("Smile Dental")
    owner = make_user("olivia@smile.test", full_name="Olivia Owner")
    add_member(org, owner, Role.OWNER)
    return owner, org


def test_invited_person_sets_password_enrolls_totp_and_signs_in_with_it(
    page: Page, new_context: object, owner_and_org: tuple[User, object], site: str
) -> None:
    owner, org = owner_and_org
    mail.outbox.clear()

    # The owner invites a clinician from the Members page.
    sign_in(page, owner)
    expect(page.get_by_role("heading", name="Smile Dental")).to_be_visible()
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Members").click()
    invite = page.get_by_role("region", name="Invite someone")
    invite.get_by_label("E-mail address").fill("nina@smile.test")
    invite.get_by_label("Role").select_option(label="Clinician")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent.")).to_be_visible()
    expect(page.get_by_role("list").get_by_text("nina@smile.test")).to_be_visible()

    assert [m.to for m in mail.outbox] == [["nina@smile.test"]]
    match = re.search(r"(\S+/invitations/\S+/)", mail.outbox[0].body)
    assert match, mail.outbox[0].body
    link = match.group(1)
    assert link.startswith(site)

    # The invitee opens the link in a browser of their own.
    invitee = new_context().new_page()  # type: ignore[operator]
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Join Smile Dental")).to_be_visible()
    invitee.get_by_label("Your full name").fill("Nina Newcomer")
    invitee.get_by_label("Choose a password").fill("lunar tide maple orbit")
    invitee.get_by_role("button", name="Create my account").click()
    expect(invitee.get_by_text("Your account is ready.")).to_be_visible()
    expect(invitee).to_have_url(re.compile(r"/accounts/login/"))
    screenshot(invitee, "01-login")
    assert_no_inline_scripts(invitee)

    # First sign-in: nothing but enrollment is reachable.
    sign_in_with_password(invitee, "nina@smile.test", "lunar tide maple orbit")
    expect(invitee).to_have_url(re.compile(r"/account/mfa-required/$"))
    expect(invitee.get_by_role("heading", name="Protect your account with a second factor")).to_be_visible()
    screenshot(invitee, "02-mfa-enrollment")
    for blocked in (f"/o/{org.slug}/", f"/o/{org.slug}/members/", "/account/security/", "/"):  # type: ignore[attr-defined]
        invitee.goto(blocked)
        expect(invitee).to_have_url(re.compile(r"/account/mfa-required/$"))

    # Enroll an authenticator app, reading the secret the way a person would copy it.
    invitee.get_by_role("link", name=re.compile("Authenticator app")).click()
    expect(invitee.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    expect(invitee.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    secret = invitee.get_by_label("Secret key").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    screenshot(invitee, "03-totp-activation")
    assert_no_inline_scripts(invitee)
    code, _ = fresh_totp(secret)
    invitee.get_by_label("Code from the app").fill(wrong_code(code))
    invitee.get_by_role("button", name="Activate").click()
    expect(invitee.get_by_text("Incorrect code.")).to_be_visible()
    expect(invitee.get_by_label("Code from the app")).to_be_focused()
    code, used_counter = fresh_totp(secret)
    invitee.get_by_label("Code from the app").fill(code)
    invitee.get_by_role("button", name="Activate").click()

    # Recovery codes are shown once enrollment succeeded.
    expect(invitee.get_by_role("heading", name="Recovery codes")).to_be_visible()
    codes = invitee.get_by_label("Unused codes").input_value().split()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    screenshot(invitee, "04-recovery-codes")
    assert_no_inline_scripts(invitee)
    nina = User.objects.get(email="nina@smile.test")
    assert Authenticator.objects.filter(user=nina, type=Authenticator.Type.TOTP).exists()
    invitee.get_by_role("link", name="Continue to CaseBridge").click()
    expect(invitee.get_by_role("heading", name="Smile Dental")).to_be_visible()

    # Sign out, then in again: password, then the app's code; a wrong code is refused visibly.
    sign_out(invitee)
    sign_in_with_password(invitee, "nina@smile.test", "lunar tide maple orbit")
    expect(invitee.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    screenshot(invitee, "05-mfa-challenge")
    assert_no_inline_scripts(invitee)
    invitee.get_by_label("Authenticator code").fill(wrong_code())
    invitee.get_by_role("button", name="Sign in", exact=True).click()
    expect(invitee.get_by_text("Incorrect code.")).to_be_visible()
    code, _ = fresh_totp(secret, after_counter=used_counter)
    enter_mfa_code(invitee, code)
    expect(invitee).to_have_url(re.compile(rf"/o/{org.slug}/$"))  # type: ignore[attr-defined]
    expect(invitee.get_by_role("heading", name="Smile Dental")).to_be_visible()
    expect(invitee.get_by_text("Clinician")).to_be_visible()

    # The second factors are managed from the security page, in the same look.
    invitee.get_by_role("link", name="Nina Newcomer").click()
    invitee.get_by_role("link", name="Manage second factors and recovery codes").click()
    expect(invitee.get_by_text("Authentication using an authenticator app is active.")).to_be_visible()
    expect(invitee.get_by_role("heading", name="Second factors")).to_be_visible()
    screenshot(invitee, "09-mfa-manage")
    assert_no_inline_scripts(invitee)


def test_passkey_enrollment_then_passwordless_sign_in(
    page: Page, owner_and_org: tuple[User, object], site: str
) -> None:
    _, org = owner_and_org
    person = make_user("pat@smile.test", mfa=False, full_name="Pat Passkey")
    add_member(org, person, Role.CLINICIAN)  # type: ignore[arg-type]

    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )

    sign_in_with_password(page, person.email)
    expect(page).to_have_url(re.compile(r"/account/mfa-required/$"))
    page.get_by_role("link", name=re.compile("Passkey or security key")).click()
    expect(page.get_by_role("heading", name="Add a passkey or security key")).to_be_visible()
    expect(page.get_by_label("Use it to sign in without a password")).to_be_checked()
    screenshot(page, "06-passkey-add")
    assert_no_inline_scripts(page)
    page.get_by_label("Name for this key").fill("Office laptop")
    page.get_by_role("button", name="Add passkey").click()

    expect(page.get_by_role("heading", name="Recovery codes")).to_be_visible()
    key = Authenticator.objects.get(user=person, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().is_passwordless  # type: ignore[attr-defined]
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator["authenticatorId"]})
    assert len(credentials["credentials"]) == 1
    assert credentials["credentials"][0]["isResidentCredential"]

    sign_out(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(re.compile(rf"/o/{org.slug}/$"))  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", name="Smile Dental")).to_be_visible()
    expect(page.get_by_role("link", name="Pat Passkey")).to_be_visible()


def test_idle_session_warns_then_signs_out(page: Page, owner_and_org: tuple[User, object]) -> None:
    owner, org = owner_and_org
    org.idle_timeout_seconds = 8  # type: ignore[attr-defined]
    org.save()  # type: ignore[attr-defined]

    sign_in(page, owner)
    expect(page.get_by_role("heading", name="Smile Dental")).to_be_visible()
    dialog = page.get_by_role("dialog", name="Are you still there?")
    expect(dialog).to_be_hidden()

    # The warning comes before the deadline, and staying resets the clock on the server.
    expect(dialog).to_be_visible(timeout=9_000)
    expect(page.get_by_role("button", name="Stay signed in")).to_be_focused()
    screenshot(page, "07-idle-warning")
    page.get_by_role("button", name="Stay signed in").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("navigation", name="Organization").get_by_role("link", name="Members").click()
    expect(page.get_by_role("heading", name="Members")).to_be_visible()

    # Left alone, the page warns again and then ends on the sign-in page.
    expect(dialog).to_be_visible(timeout=12_000)
    expect(page).to_have_url(re.compile(r"/accounts/login/"), timeout=15_000)
    expect(page.get_by_text(re.compile(r"signed out after 8 seconds without activity"))).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "08-idle-signed-out")

    page.goto(f"/o/{org.slug}/members/")  # type: ignore[attr-defined]
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.get_by_label("Password")).to_be_visible()
