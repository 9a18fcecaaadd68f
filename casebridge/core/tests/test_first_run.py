"""The first administrator: createadmin prints a one-hour, single-use setup link."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from casebridge.accounts.models import SetupLink, User
from casebridge.audit.models import Event
from casebridge.core.testing import PASSWORD
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db


def _createadmin(*args: str) -> str:
    out = StringIO()
    call_command("createadmin", *args, stdout=out)
    return out.getvalue()


def test_createadmin_then_setup_link_sets_the_password_once() -> None:
    output = _createadmin("--email", "Boss@Smile.test", "--org", "Smile Dental", "--kind", "practice")
    path = re.search(r"https://localhost:8443(/setup/\S+/)", output)
    assert path is not None
    user = User.objects.get(email="boss@smile.test")
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user).role == "owner"
    client = Client()
    assert client.get(path.group(1), secure=True).status_code == 200
    response = client.post(path.group(1), {"password": PASSWORD}, secure=True)
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert client.get(path.group(1), secure=True).status_code == 404  # single use
    assert Event.objects.filter(action="auth.password.set").exists()


def test_an_expired_setup_link_is_refused() -> None:
    output = _createadmin("--email", "late@smile.test", "--org", "Late Dental", "--kind", "practice")
    path = re.search(r"https://localhost:8443(/setup/\S+/)", output)
    assert path is not None
    SetupLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = Client().post(path.group(1), {"password": PASSWORD}, secure=True)
    assert response.status_code == 404
    assert not User.objects.get(email="late@smile.test").has_usable_password()


def test_createadmin_refuses_bad_input_and_changes_nothing() -> None:
    with pytest.raises(CommandError, match="not an e-mail"):
        _createadmin("--email", "nobody", "--org", "X", "--kind", "lab")
    with pytest.raises(CommandError):
        _createadmin("--email", "a@b.test", "--org", "X", "--kind", "hospital")
    assert not User.objects.exists()
