"""What the e-mails say: a patient can tell who shared files and how to check it is genuine; case
e-mails read as sentences and name who the news is from; no e-mail carries patient data."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.template.loader import render_to_string
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Status
from casebridge.orgs import actions as org_actions
from casebridge.sharing import actions
from casebridge.sharing.models import ExternalLink
from casebridge.sharing.tests.conftest import PATIENT, RECIPIENT, SharedCase, build_case, practice_access

pytestmark = pytest.mark.django_db

PREFIX = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX


def _share(shared: SharedCase, count: int = 2) -> mail.EmailMessage:
    files = [a for a in actions.shared_files_of_case(shared.case)][:count]
    actions.create_link(
        shared.access, shared.case, attachments=files, recipient_email=RECIPIENT, purpose="second opinion"
    )
    return mail.outbox[-1]


def _no_phi(message: mail.EmailMessage, shared: SharedCase) -> None:
    for text in (message.subject, message.body):
        assert PATIENT not in text and "Roe" not in text
        assert shared.case.number not in text  # to an outsider, even the case number says nothing useful


def test_the_share_mail_names_the_practice_and_how_to_check_it(connected: object) -> None:
    shared = build_case(connected)
    org_actions.update_profile(practice_access(shared.personas, "owner"), address="", phone="(217) 555-0142")
    shared.case.practice.refresh_from_db()
    message = _share(shared)
    assert message.subject == f"{PREFIX}Smile Dental shared 2 files with you"
    body = message.body
    assert body.startswith("Smile Dental shared 2 files with you through CaseBridge")
    assert "Call Smile Dental at (217) 555-0142, or at the number you already have for them" in body
    assert f"The link starts with {settings.PUBLIC_URL}/" in body
    assert "CaseBridge never asks for your password" in body
    assert "dental practice using CaseBridge" not in body
    _no_phi(message, shared)


def test_without_a_phone_on_file_it_says_to_use_the_number_they_know(connected: object) -> None:
    shared = build_case(connected)
    message = _share(shared, count=1)
    assert message.subject == f"{PREFIX}Smile Dental shared 1 file with you"
    assert "Call Smile Dental at the number you already have for them" in message.body
    assert " at ," not in message.body and "None" not in message.body
    _no_phi(message, shared)


def test_the_code_mail_names_the_practice_and_never_the_patient(connected: object) -> None:
    shared = build_case(connected)
    _share(shared)
    link = ExternalLink.objects.get(case=shared.case)
    actions.send_code(link, ip="192.0.2.1")
    message = mail.outbox[-1]
    assert message.subject == f"{PREFIX}Your one-time code for the files from Smile Dental"
    assert message.body.startswith("Your one-time code is: ")
    assert "Nobody from CaseBridge or Smile Dental will ever ask you to tell them this code." in message.body
    _no_phi(message, shared)


def test_case_mails_are_sentences_that_name_the_sender(connected: object) -> None:
    shared = build_case(connected, submit=False)
    mail.outbox.clear()
    case_actions.submit_case(shared.access, shared.case)
    to_lab = mail.outbox[-1]
    number = shared.case.number
    assert to_lab.subject == f"{PREFIX}{number}: New case for your lab"
    assert to_lab.body.startswith(f"New case for your lab.\n\nCase: {number}\nFrom: Smile Dental\n")
    assert " on case " not in to_lab.body and "was sent to you on" not in to_lab.body
    assert PATIENT not in to_lab.subject + to_lab.body


def test_names_with_ampersands_and_apostrophes_are_not_html_escaped() -> None:
    # Plain-text mail: Django's HTML autoescaping would print "Smith &amp; O&#x27;Neil".
    name = "Smith & O'Neil Dental"
    context = {
        "organization": name,
        "file_count": 1,
        "expires_at": timezone.now(),
        "link": "https://x/s/t/",
        "phone": "",
        "public_url": "https://x",
    }
    for template in ("share_link_subject", "share_link_body"):
        text = render_to_string(f"mail/{template}.txt", context)
        assert name in text and "&amp;" not in text and "&#x27;" not in text


MAIL_TEMPLATES = sorted(p.stem for p in (Path(__file__).parents[2] / "templates" / "mail").glob("*.txt"))


def test_the_template_list_is_not_empty() -> None:
    assert len(MAIL_TEMPLATES) >= 12


@pytest.mark.parametrize("template", MAIL_TEMPLATES)
def test_every_mail_template_renders_without_leftovers(template: str) -> None:
    text = render_to_string(
        f"mail/{template}.txt",
        {
            "organization": "Smile Dental",
            "number": "CB-2026-000001",
            "event": "New message",
            "sender": "Precision Lab",
            "link": "https://x/l/",
            "preferences_link": "https://x/account/security/",
            "file_count": 2,
            "expires_at": timezone.now(),
            "phone": "(217) 555-0142",
            "code": "123456",
            "minutes": 10,
            "inviter": "Ann",
            "role": "Staff",
            "member": "Bob",
            "granted_by": "Ann",
            "public_url": "https://x",
        },
    )
    assert text.strip() and "{" not in text and "}" not in text


def test_news_from_the_lab_names_the_lab_and_reads_as_a_sentence(connected: object) -> None:
    shared = build_case(connected)
    lab = resolve(shared.personas.lab_manager, shared.personas.lab)
    assert lab is not None
    mail.outbox.clear()
    case_actions.confirm_receipt(lab, shared.case)
    case_actions.change_status(lab, shared.case, Status.IN_PRODUCTION)
    case_actions.change_status(lab, shared.case, Status.QUALITY_CHECK)
    case_actions.change_status(lab, shared.case, Status.SHIPPED, tracking_number="1Z999")
    number = shared.case.number
    firsts = {m.body.splitlines()[0] for m in mail.outbox}
    assert firsts == {"The lab confirmed receipt.", "The lab marked the case shipped."}
    for message in mail.outbox:
        assert message.subject.startswith(f"{PREFIX}{number}: ")
        assert f"\nCase: {number}\nFrom: Precision Lab\n" in message.body
        assert "Status:" not in message.subject and PATIENT not in message.subject + message.body
