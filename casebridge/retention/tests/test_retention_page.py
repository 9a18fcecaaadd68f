"""The retention page: owners and compliance officers set policies (refused below the floor, in
place, changing nothing), place and lift legal holds, see the next run; owners postpone it;
certificates download as PDF; other members and other organizations get nothing."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.cases.models import Case, Patient, Status
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging.tests.cases import attach, clinician_access, draft_case
from casebridge.retention import policies
from casebridge.retention.models import LegalHold, Postponement, RecordType, RetentionPolicy
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db


def _closed_long_ago(case: Case) -> None:
    Case.objects.filter(pk=case.pk).update(
        status=Status.COMPLETED, completed_at=timezone.now() - timedelta(days=9 * 365)
    )
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=date(1970, 1, 1))  # an adult: no minors' rule


def _url(personas: Personas) -> str:
    return reverse("retention", args=[personas.practice.slug])


def test_a_policy_below_the_floor_is_refused_in_place_and_changes_nothing(personas: Personas) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    refused = client.post(
        _url(personas),
        {"operation": "policy", "record_type": "case_files", "preset": "US-TX", "keep": "3", "unit": "years"},
    )
    assert refused.status_code == 400
    assert "Nothing was saved" in refused.content.decode() and "22 Tex. Admin. Code" in refused.content.decode()
    assert not RetentionPolicy.objects.exists()

    saved = client.post(
        _url(personas),
        {"operation": "policy", "record_type": "case_files", "preset": "US-TX", "keep": "7", "unit": "years"},
    )
    assert saved.status_code == 302
    assert RetentionPolicy.objects.get().keep_days == 7 * 365


def test_holds_are_placed_and_lifted_with_reasons(personas: Personas, vault_home: Path) -> None:
    access = clinician_access(personas)
    case = draft_case(access)
    client = signed_in_client(personas.members["owner"])
    assert client.post(_url(personas), {"operation": "hold", "case": case.number, "reason": "x"}).status_code == 400
    assert (
        client.post(
            _url(personas), {"operation": "hold", "case": "CB-1999-000001", "reason": "Subpoena 12"}
        ).status_code
        == 400
    )
    client.post(_url(personas), {"operation": "hold", "case": case.number, "reason": "Subpoena 12"})
    hold = LegalHold.objects.get()
    assert hold.case == case and case.number in client.get(_url(personas)).content.decode()
    client.post(_url(personas), {"operation": "lift", "hold": str(hold.pk), "reason": "Matter settled"})
    hold.refresh_from_db()
    assert hold.lifted_at is not None and hold.lift_reason == "Matter settled"


def test_the_preview_lists_what_is_due_and_only_owners_postpone(personas: Personas, vault_home: Path) -> None:
    access = clinician_access(personas, "owner")
    policies.set_policy(access, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    case = draft_case(access)
    attach(access, case, binary_stl(700), kind="scan", label="upper")
    _closed_long_ago(case)
    owner = signed_in_client(personas.members["owner"])
    assert f"{case.number}: 1 file" in owner.get(_url(personas)).content.decode()

    until = (timezone.now().date() + timedelta(days=20)).isoformat()
    officer = signed_in_client(personas.members["compliance_officer"])
    assert (
        officer.post(_url(personas), {"operation": "postpone", "until": until, "reason": "Board audit"}).status_code
        == 403
    )
    assert not Postponement.objects.exists()
    assert (
        owner.post(_url(personas), {"operation": "postpone", "until": until, "reason": "Board audit"}).status_code
        == 302
    )
    assert "Postponed until" in owner.get(_url(personas)).content.decode()


def test_a_certificate_downloads_as_a_pdf_for_its_organization_only(personas: Personas, vault_home: Path) -> None:
    access = clinician_access(personas, "owner")
    policies.set_policy(access, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    case = draft_case(access)
    attach(access, case, binary_stl(700), kind="scan", label="upper")
    _closed_long_ago(case)
    certificate = policies.enforce(personas.practice)
    assert certificate is not None
    url = reverse("retention_certificate", args=[personas.practice.slug, certificate.pk])

    pdf = signed_in_client(personas.members["compliance_officer"]).get(url)

    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    other = reverse("retention_certificate", args=[personas.other_practice.slug, certificate.pk])
    assert signed_in_client(personas.outsider).get(other).status_code == 404


@pytest.mark.parametrize("role", ["clinician", "staff"])
def test_other_members_get_no_retention_page(personas: Personas, role: str) -> None:
    client = signed_in_client(personas.members[role])
    assert client.get(_url(personas)).status_code == 403
    assert client.post(_url(personas), {"operation": "hold", "reason": "Not mine to hold"}).status_code == 403
    assert not LegalHold.objects.exists()


def _declaration(state: str, **changes: str) -> dict[str, str]:
    return {
        "operation": "declare",
        "state": state,
        "years": "7",
        "minor_until_age": "",
        "source": "State Dental Board Rule 12.3",
        "url": "https://example.org/rule",
        "confirmed": "1",
    } | changes


def test_an_owner_declares_the_rule_of_a_state_not_listed_and_then_chooses_it(personas: Personas) -> None:
    state = next(iter(policies.unlisted_states()))
    owner = signed_in_client(personas.members["owner"])
    page = owner.get(_url(personas)).content.decode()
    assert "A state not in the list" in page and f'<option value="{state}">' in page
    assert 'value="declared"' not in page  # nothing to choose before a rule is declared

    saved = owner.post(_url(personas), _declaration(state))

    assert saved.status_code == 302
    page = owner.get(_url(personas)).content.decode()
    assert "rule is recorded" in page and 'value="declared"' in page
    assert "State Dental Board Rule 12.3" in page
    chosen = owner.post(
        _url(personas),
        {"operation": "policy", "record_type": "case_files", "preset": "declared", "keep": "7", "unit": "years"},
    )
    assert chosen.status_code == 400 and "at least 2557 days" in chosen.content.decode()  # 7 years and the leap days
    chosen = owner.post(
        _url(personas),
        {"operation": "policy", "record_type": "case_files", "preset": "declared", "keep": "8", "unit": "years"},
    )
    assert chosen.status_code == 302
    assert RetentionPolicy.objects.get().preset == "declared"
    assert f"2920 days ({policies.US_STATES[state]}, as declared)" in owner.get(_url(personas)).content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"confirmed": ""}, "Confirm that you checked the rule"),
        ({"state": "TX"}, "Texas&#x27;s rule is in the list"),
        ({"years": "seven"}, "as a whole number"),
        ({"years": "0"}, "from 1 to 30"),
        ({"source": ""}, "in 5 to 200 characters"),
    ],
)
def test_a_bad_declaration_is_refused_in_place_and_changes_nothing(
    personas: Personas, changes: dict[str, str], message: str
) -> None:
    state = next(iter(policies.unlisted_states()))
    refused = signed_in_client(personas.members["owner"]).post(_url(personas), _declaration(state) | changes)
    assert refused.status_code == 400
    assert "Nothing was saved" in refused.content.decode() and message in refused.content.decode()
    assert not policies.DeclaredStateRule.objects.exists()


def test_only_owners_and_administrators_declare_a_rule_and_only_for_their_organization(personas: Personas) -> None:
    state = next(iter(policies.unlisted_states()))
    officer = signed_in_client(personas.members["compliance_officer"])
    assert "Record the rule" not in officer.get(_url(personas)).content.decode()
    assert officer.post(_url(personas), _declaration(state)).status_code == 403
    for role in ("clinician", "staff"):
        assert signed_in_client(personas.members[role]).post(_url(personas), _declaration(state)).status_code == 403
    assert signed_in_client(personas.outsider).post(_url(personas), _declaration(state)).status_code == 404
    assert not policies.DeclaredStateRule.objects.exists()


def test_a_refused_policy_comes_back_with_what_was_typed(personas: Personas) -> None:
    refused = signed_in_client(personas.members["owner"]).post(
        _url(personas),
        {"operation": "policy", "record_type": "case_files", "preset": "US-TX", "keep": "1000", "unit": "days"},
    )
    page = refused.content.decode()
    assert refused.status_code == 400
    assert '<option value="US-TX" selected>' in page and 'value="1000"' in page
    assert '<option value="days" selected>days</option>' in page


def test_messages_and_links_have_their_policies_and_the_preview_counts_each_kind(
    personas: Personas, vault_home: Path
) -> None:
    from casebridge.cases.models import Message

    officer = signed_in_client(personas.members["compliance_officer"])
    messages = {"operation": "policy", "record_type": "messages", "keep": "6", "unit": "years"}
    refused = officer.post(_url(personas), messages)
    assert (
        refused.status_code == 400
        and "Choose the state for the files of closed cases first" in refused.content.decode()
    )
    links = {"operation": "policy", "record_type": "external_links", "keep": "29", "unit": "days"}
    assert "at least 30 days" in officer.post(_url(personas), links).content.decode()
    assert not RetentionPolicy.objects.exists()

    access = clinician_access(personas, "owner")
    policies.set_policy(access, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    assert officer.post(_url(personas), messages).status_code == 302
    assert officer.post(_url(personas), links | {"keep": "30"}).status_code == 302
    case = draft_case(access)
    attach(access, case, binary_stl(700), kind="scan", label="upper")
    Message.objects.create(case=case, author_org=personas.practice, body="Shade A2 confirmed?")
    _closed_long_ago(case)

    page = officer.get(_url(personas)).content.decode()
    assert f"{case.number}: 1 file, 1 message" in page
    assert "1827 days (the files' state rule)" in page and "30 days after the link ended" in page


def test_the_page_says_why_the_audit_archive_is_kept(personas: Personas) -> None:
    page = signed_in_client(personas.members["owner"]).get(_url(personas)).content.decode()
    assert "crypto-shredded once every organization's" in page
    assert "an organization keeps its audit events for ever (the default)" in page
