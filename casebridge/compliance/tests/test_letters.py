"""Notification letters: one per notice a decided breach requires, drafted from the incident with
every element the rule lists, finalized only when each is written and no [[placeholder]] is left,
printed as PDF; compliance managers of the organization only; nothing of the text in the log."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.audit.models import Event
from casebridge.compliance import incidents, letters
from casebridge.compliance.models import Decision, Incident, NotificationLetter
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

FACTORS = {
    "factor_nature": "Names and X-rays of 600 patients.",
    "factor_recipient": "Unknown: a stolen laptop.",
    "factor_acquired": "Unknown.",
    "factor_mitigation": "Remote wipe requested.",
}


def _officer(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    return access


def _breach(personas: Personas, **changes: object) -> Incident:
    incident = incidents.record_incident(
        _officer(personas),
        title="Stolen laptop",
        description="Laptop with exported X-rays stolen from a car.",
        discovered_at=timezone.now() - timedelta(days=3),
        occurred_at=timezone.now() - timedelta(days=4),
    )
    values: dict = {
        **FACTORS,
        "individuals_affected": 600,
        "most_in_one_state": 600,
        "under_gdpr": True,
        "contract_deadline_days": None,
        "decision": Decision.BREACH,
        "decision_rationale": "Unencrypted copies; low probability cannot be shown.",
    }
    values.update(changes)
    return incidents.assess(_officer(personas), incident, **values)


def _complete(key: str) -> dict[str, str]:
    return {e.key: f"Written {e.key} for the {key} notice." for e in letters.ELEMENTS[key]}


def test_every_required_notice_has_its_elements_prefilled_with_placeholders_left(personas: Personas) -> None:
    incident = _breach(personas)
    keys = [d.key for d in incidents.clocks(incident)]
    assert sorted(keys) == ["authority", "hhs", "individuals", "media"]
    for key in keys:
        draft = letters.prefill(incident, key)
        assert set(draft) == {e.key for e in letters.ELEMENTS[key]}
        assert letters.problems(key, draft), f"{key}: a first draft must still need a person"
    individuals = letters.prefill(incident, "individuals")
    assert f"{incident.discovered_at:%B %d, %Y}" in individuals["what_happened"]
    assert f"{incident.occurred_at:%B %d, %Y}" in individuals["what_happened"]
    assert personas.practice.name in individuals["contact"]
    assert "600" in letters.prefill(incident, "hhs")["individuals"]


def test_the_individuals_notice_needs_all_five_elements_of_164_404_c(personas: Personas) -> None:
    assert [e.citation for e in letters.ELEMENTS["individuals"]] == [f"164.404(c)(1)({x})" for x in "ABCDE"]
    for element in letters.ELEMENTS["individuals"]:
        missing = {**_complete("individuals"), element.key: "  "}
        assert set(letters.problems("individuals", missing)) == {element.key}
        placeholder = {**_complete("individuals"), element.key: "We [[fill]] later."}
        assert set(letters.problems("individuals", placeholder)) == {element.key}
    assert letters.problems("individuals", _complete("individuals")) == {}


def test_a_draft_saves_with_gaps_but_only_a_complete_letter_becomes_final(personas: Personas) -> None:
    incident = _breach(personas)
    officer = _officer(personas)
    draft = letters.prefill(incident, "individuals")
    letters.save(officer, incident, "individuals", draft, finalize=False)
    with pytest.raises(ValidationError) as refused:
        letters.save(officer, incident, "individuals", draft, finalize=True)
    assert "information" in refused.value.message_dict
    letter = NotificationLetter.objects.get(incident=incident, key="individuals")
    assert letter.finalized_at is None
    letter = letters.save(officer, incident, "individuals", _complete("individuals"), finalize=True)
    assert letter.finalized_at is not None and letter.finalized_by == personas.members["compliance_officer"]
    with pytest.raises(ValidationError, match="final"):
        letters.save(officer, incident, "individuals", _complete("individuals"), finalize=False)
    events = Event.objects.filter(action="compliance.incident.letter_saved")
    assert events.count() == 2
    assert all("Written" not in str(e.details) for e in events)  # the words stay out of the log


def test_a_notice_the_clocks_do_not_require_has_no_letter(personas: Personas) -> None:
    incident = _breach(personas, individuals_affected=3, most_in_one_state=3, under_gdpr=False)
    with pytest.raises(ValidationError, match="not one this incident requires"):
        letters.letter_for(incident, "media")
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("incident_letter", args=[personas.practice.slug, incident.pk, "media"])
    assert officer.get(url).status_code == 404
    undecided = incidents.record_incident(
        _officer(personas), title="t", description="d", discovered_at=datetime(2026, 1, 5, tzinfo=UTC)
    )
    with pytest.raises(ValidationError):
        letters.letter_for(undecided, "individuals")


def test_the_page_edits_and_finalizes_with_errors_beside_their_parts(personas: Personas) -> None:
    incident = _breach(personas)
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("incident_letter", args=[personas.practice.slug, incident.pk, "authority"])
    page = officer.get(url).content.decode()
    assert "Art. 33(3)(a)" in page and "[[" in page
    incomplete = {**_complete("authority"), "consequences": "", "operation": "finalize"}
    refused = officer.post(url, incomplete)
    assert refused.status_code == 400
    assert 'aria-invalid="true" aria-describedby="l-consequences-errors"' in refused.content.decode()
    assert officer.post(url, {**_complete("authority"), "operation": "finalize"}).status_code == 302
    detail = officer.get(reverse("incident_detail", args=[personas.practice.slug, incident.pk])).content.decode()
    assert "Letter (final)" in detail and "Draft the letter" in detail


def test_the_pdf_says_draft_until_final_and_carries_every_element(personas: Personas) -> None:
    incident = _breach(personas)
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("incident_letter_pdf", args=[personas.practice.slug, incident.pk, "individuals"])

    def text() -> str:
        response = officer.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        return "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)

    assert "DRAFT" in text()
    letters.save(_officer(personas), incident, "individuals", _complete("individuals"), finalize=True)
    final = text()
    assert "DRAFT" not in final and "Dear Patient" in final
    for element in letters.ELEMENTS["individuals"]:
        assert f"Written {element.key}" in final
    assert Event.objects.filter(action="compliance.incident.letter_printed").count() == 2


def test_only_compliance_managers_of_the_organization_reach_letters(personas: Personas) -> None:
    incident = _breach(personas)
    url = reverse("incident_letter", args=[personas.practice.slug, incident.pk, "individuals"])
    assert signed_in_client(personas.members["staff"]).get(url).status_code == 403
    assert signed_in_client(personas.members["staff"]).post(url, _complete("individuals")).status_code == 403
    assert signed_in_client(personas.outsider).get(url).status_code == 404
    elsewhere = reverse("incident_letter", args=[personas.other_practice.slug, incident.pk, "individuals"])
    assert signed_in_client(personas.outsider).get(elsewhere).status_code == 404
    assert not NotificationLetter.objects.exists()
    staff = resolve(personas.members["staff"], personas.practice)
    assert staff is not None
    with pytest.raises(Forbidden):
        letters.save(staff, incident, "individuals", _complete("individuals"), finalize=False)


def test_a_lab_drafts_its_notice_to_the_covered_entity(personas: Personas) -> None:
    from casebridge.core.testing import add_member, make_user

    officer = make_user("privacy@lab.test")
    add_member(personas.lab, officer, "compliance_officer")
    access = resolve(officer, personas.lab)
    assert access is not None
    incident = incidents.record_incident(
        access, title="Misdirected", description="d", discovered_at=timezone.now() - timedelta(days=1)
    )
    incident = incidents.assess(
        access,
        incident,
        **FACTORS,
        individuals_affected=2,
        most_in_one_state=2,
        under_gdpr=False,
        contract_deadline_days=10,
        decision=Decision.BREACH,
        decision_rationale="Sent to the wrong practice.",
    )
    assert [d.key for d in incidents.clocks(incident)] == ["covered_entity"]
    draft = letters.prefill(incident, "covered_entity")
    assert "164.410(c)(1)" in [e.citation for e in letters.ELEMENTS["covered_entity"]]
    assert "individuals" in letters.problems("covered_entity", draft)
