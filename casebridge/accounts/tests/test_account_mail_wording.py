"""The e-mails django-allauth sends (password reset) speak as CaseBridge does: no "Hello from
localhost", no invitation to sign up (accounts come by invitation only), a reminder that
CaseBridge never asks for passwords or codes."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from casebridge.core.testing import Personas

pytestmark = pytest.mark.django_db


def _reset(email: str) -> mail.EmailMessage:
    mail.outbox.clear()
    response = Client().post("/accounts/password/reset/", {"email": email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    return mail.outbox[0]


def test_a_password_reset_mail_reads_as_casebridge(personas: Personas) -> None:
    message = _reset(personas.members["staff"].email)
    assert message.subject.startswith("[CaseBridge] ")
    body = message.body
    assert body.startswith("Someone (hopefully you) asked to reset the password of your CaseBridge account.")
    assert "/accounts/password/reset/key/" in body
    assert "CaseBridge never asks for your password" in body
    assert "Hello from" not in body and "Thank you for using" not in body


def test_a_reset_for_an_unknown_address_does_not_invite_a_sign_up(personas: Personas) -> None:
    message = _reset("nobody@smile.test")
    body = message.body
    assert "no account uses this address" in body and "by invitation only" in body
    assert "sign up" not in body.lower() and "/signup/" not in body
