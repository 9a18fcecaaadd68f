"""Confirming identity before a sensitive action takes the password or a second factor, never an e-mailed code."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from casebridge.core.testing import Personas, signed_in_client


@pytest.mark.parametrize("name", ["account_request_reauthentication_code", "account_confirm_reauthentication_code"])
def test_reauthentication_by_e_mailed_code_is_refused(personas: Personas, name: str) -> None:
    client = signed_in_client(personas.members["owner"], reauthenticated=False)

    assert client.get(reverse(name)).status_code == 403
    assert client.post(reverse(name), {"email": personas.members["owner"].email}).status_code == 403
    assert mail.outbox == []


def test_the_reauthentication_page_offers_password_and_second_factor_only(personas: Personas) -> None:
    owner = personas.members["owner"]
    # A verified address is what would make allauth offer "Send me a sign-in code".
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    client = signed_in_client(owner, reauthenticated=False)

    page = client.get(reverse("account_reauthenticate")).content.decode()

    assert reverse("mfa_reauthenticate") in page
    assert reverse("account_request_reauthentication_code") not in page
