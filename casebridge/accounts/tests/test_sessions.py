"""Sign-in: mandatory MFA, throttling, idle and absolute session limits, ending sessions."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.accounts.middleware import SESSION_AUTH_AT, SESSION_SEEN_AT
from casebridge.audit.models import Event
from casebridge.core.testing import PASSWORD, Personas, make_user, signed_in_client, totp_code

pytestmark = pytest.mark.django_db


def _login(client: Client, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_a_person_without_mfa_sees_nothing_but_enrollment(db: None) -> None:
    user = make_user("new@smile.test", mfa=False)
    client = Client()
    assert _login(client, user.email).status_code == 302
    for name in ("home", "security"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"] == reverse("mfa_required")
    assert client.get(reverse("mfa_required")).status_code == 200
    assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_password_alone_does_not_sign_in_when_mfa_is_enrolled(personas: Personas) -> None:
    client = Client()
    response = _login(client, "staff@smile.test")
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("home")).status_code == 302  # not signed in yet
    user = personas.members["staff"]
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(user)})
    assert response.status_code == 302
    assert client.get(reverse("org_home", args=["smile-dental"])).status_code == 200
    assert Event.objects.filter(action="auth.login.succeeded", actor_id=str(user.pk)).count() == 1


def test_a_wrong_or_replayed_totp_code_is_refused_and_audited(personas: Personas) -> None:
    user = personas.members["staff"]
    first = Client()
    _login(first, user.email)
    code = totp_code(user)
    assert (
        first.post(reverse("mfa_authenticate"), {"code": "000000" if code != "000000" else "111111"}).status_code == 200
    )
    assert Event.objects.filter(action="auth.mfa.failed", actor_id=str(user.pk)).exists()
    assert first.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302
    second = Client()
    _login(second, user.email)
    response = second.post(reverse("mfa_authenticate"), {"code": code})  # same code again
    assert response.status_code == 200
    assert second.get(reverse("home")).status_code == 302


def test_failed_passwords_are_throttled_per_account_with_a_clear_message(personas: Personas) -> None:
    client = Client()
    for _ in range(5):
        response = _login(client, "staff@smile.test", "wrong password here")
        assert response.status_code == 200
    response = _login(client, "staff@smile.test", PASSWORD)  # even the right one, for now
    assert response.status_code in (200, 429)
    assert b"Too many failed login attempts" in response.content
    assert Event.objects.filter(action="auth.login.failed", actor_label="staff@smile.test").count() >= 5


def test_idle_sessions_end_and_say_why(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    assert client.get(reverse("org_home", args=["smile-dental"])).status_code == 200
    session = client.session
    session[SESSION_SEEN_AT] = time.time() - 16 * 60
    session.save()
    response = client.get(reverse("org_home", args=["smile-dental"]), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("account_login"))
    assert b"signed out after 15 minutes" in response.content
    assert Event.objects.filter(action="auth.session.expired", details__reason="idle").exists()


def test_the_idle_limit_is_set_per_organization(personas: Personas) -> None:
    personas.practice.idle_timeout_seconds = 120
    personas.practice.save()
    client = signed_in_client(personas.members["staff"])
    client.get(reverse("org_home", args=["smile-dental"]))
    session = client.session
    session[SESSION_SEEN_AT] = time.time() - 150
    session.save()
    assert client.get(reverse("org_home", args=["smile-dental"])).status_code == 302


def test_reading_the_session_status_does_not_count_as_activity(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    client.get(reverse("org_home", args=["smile-dental"]))
    session = client.session
    session[SESSION_SEEN_AT] = time.time() - 100
    session.save()
    status = client.get(reverse("session_status")).json()
    assert 790 <= status["remaining"] <= 800
    assert client.session[SESSION_SEEN_AT] < time.time() - 99
    client.post(reverse("session_keepalive"))
    assert client.session[SESSION_SEEN_AT] > time.time() - 5


def test_sessions_end_after_the_absolute_lifetime_despite_activity(personas: Personas) -> None:
    client = signed_in_client(personas.members["staff"])
    client.get(reverse("home"))
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 12 * 3600 - 1
    session.save()
    assert client.get(reverse("home")).status_code == 302
    assert Event.objects.filter(action="auth.session.expired", details__reason="absolute").exists()


def test_log_out_everywhere_ends_every_session(personas: Personas) -> None:
    user = personas.members["staff"]
    laptop, phone = signed_in_client(user), signed_in_client(user)
    laptop.get(reverse("home"))
    phone.get(reverse("home"))
    laptop.post(reverse("logout_everywhere"))
    assert phone.get(reverse("org_home", args=["smile-dental"])).status_code == 302
    assert laptop.get(reverse("org_home", args=["smile-dental"])).status_code == 302
    assert Event.objects.filter(action="auth.session.revoked").exists()


def test_the_last_second_factor_cannot_be_removed(personas: Personas) -> None:
    from allauth.mfa.adapter import get_adapter
    from allauth.mfa.models import Authenticator

    auth = Authenticator.objects.get(user=personas.members["staff"], type="totp")
    assert get_adapter().can_delete_authenticator(auth) is False


def test_mfa_secrets_are_encrypted_at_rest(personas: Personas) -> None:
    from allauth.mfa.models import Authenticator

    from casebridge.accounts.adapters import decrypt_secret

    stored = Authenticator.objects.get(user=personas.members["staff"], type="totp").data["secret"]
    assert stored.startswith("cbenc1:")
    secret = decrypt_secret(stored)
    assert secret not in stored and len(secret) >= 16
    tampered = stored[:-6] + ("AAAAAA" if not stored.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(ValueError, match="integrity"):
        decrypt_secret(tampered)


@pytest.mark.real_password_hashing
def test_passwords_are_hashed_with_argon2id(db: None) -> None:
    user = make_user("hash@smile.test", mfa=False)
    assert user.password.startswith("argon2$argon2id$")


def test_open_sign_up_is_closed(db: None) -> None:
    response = Client().post(
        reverse("account_signup"), {"email": "x@y.test", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert b"Sign Up Closed" in response.content or response.status_code in (302, 403)
    from casebridge.accounts.models import User

    assert not User.objects.filter(email="x@y.test").exists()
