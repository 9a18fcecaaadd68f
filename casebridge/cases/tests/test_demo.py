"""`casebridge demo`: what it creates, that it runs once, and that its printed sign-in details work."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from allauth.core import context
from allauth.mfa.base.forms import AuthenticateForm
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.cases import demo
from casebridge.cases.models import Attachment, AttachmentKind, Case, ImagingOrder, Status
from casebridge.core.testing import make_org
from casebridge.imaging.models import IngestJob
from casebridge.kernel import filetypes
from casebridge.orgs.models import Connection, Membership, Organization
from casebridge.vault import api as vault

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("demo", *args, stdout=out)
    return out.getvalue()


def _plaintext(attachment: Attachment) -> bytes:
    version = vault.get_version(attachment.stored_object)
    return b"".join(bytes(chunk) for chunk in vault.read_version(version))


def test_it_creates_the_demo_world(vault_home: Path) -> None:
    output = _run()
    assert set(Organization.objects.values_list("name", flat=True)) == set(demo.DEMO_ORGANIZATIONS)
    assert User.objects.count() == len(demo.PEOPLE) == Membership.objects.count()
    assert Connection.objects.filter(status="active", basis="baa").count() == 2
    assert Case.objects.count() == len(demo.CASES) == 12
    # The imaging center has an order waiting in its queue.
    order = ImagingOrder.objects.get()
    assert order.center.name == demo.IMAGING and order.status == "sent"
    statuses = set(Case.objects.values_list("status", flat=True))
    for status in (
        Status.DRAFT,
        Status.SUBMITTED,
        Status.RECEIVED,
        Status.IN_DESIGN,
        Status.DESIGN_APPROVAL_REQUESTED,
        Status.ON_HOLD,
        Status.SHIPPED,
        Status.COMPLETED,
    ):
        assert status in statuses
    assert Case.objects.get(status=Status.ON_HOLD).messages.filter(is_question=True).exists()
    assert Event.objects.filter(action="case.submitted").count() == 10
    for person in demo.PEOPLE:
        assert person[2] in output
    assert output.count("otpauth://totp/") == len(demo.PEOPLE)


def test_every_file_decrypts_and_is_what_it_claims(vault_home: Path) -> None:
    _run()
    seen: set[str] = set()
    contents: set[bytes] = set()
    for attachment in Attachment.objects.select_related("stored_object"):
        content = _plaintext(attachment)
        kind = filetypes.detect(content[: filetypes.SNIFF_BYTES], len(content))
        assert kind.name == attachment.stored_object.file_type
        seen.add(kind.name)
        contents.add(content)
        if attachment.kind == AttachmentKind.CBCT:
            assert kind is filetypes.ZIP  # a whole small CBCT, indexed as the case's study
            assert IngestJob.objects.filter(source=attachment.stored_object).exists()
    assert {"stl", "zip", "jpeg", "png"} <= seen
    assert len(contents) == Attachment.objects.count()  # every file is different


def test_the_printed_totp_secret_passes_the_mfa_form(vault_home: Path) -> None:
    output = _run()
    block = output.split("manager@precision-lab-demo.example", 1)[1]
    password = re.search(r"password: (\S+)", block).group(1)
    secret = re.search(r"TOTP:\s+(\S+)", block).group(1)
    user = User.objects.get(email="manager@precision-lab-demo.example")
    assert user.check_password(password)
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    request = RequestFactory().post("/accounts/2fa/authenticate/")
    request.user = user
    with context.request_context(request):
        assert AuthenticateForm(user=user, data={"code": code}).is_valid()
        assert not AuthenticateForm(user=user, data={"code": "000000" if code != "000000" else "111111"}).is_valid()


def test_running_it_twice_changes_nothing(vault_home: Path) -> None:
    _run()
    counts = (Organization.objects.count(), User.objects.count(), Case.objects.count(), Attachment.objects.count())
    assert "demo data already present" in _run()
    assert counts == (
        Organization.objects.count(),
        User.objects.count(),
        Case.objects.count(),
        Attachment.objects.count(),
    )


def test_it_refuses_a_database_with_real_organizations(vault_home: Path) -> None:
    make_org("Real Dental")
    with pytest.raises(CommandError, match="not demo data"):
        _run()
    assert not Case.objects.exists()
    _run("--force")
    assert Case.objects.count() == 12
