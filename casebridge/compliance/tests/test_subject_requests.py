"""Patients' requests: deadlines by the law that applies (fixed dates), the copy of everything
held as a streamed ZIP with its index, erasure only where the law and retention allow (through
the retention shred path), restriction refused by the access policy when sharing, and the pages'
guards (compliance managers of the owning organization only)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import Forbidden, OrgAccess, resolve, sharing_refusal
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.audit.models import Event
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Case, Message, Patient, Status
from casebridge.compliance import subject_requests as requests
from casebridge.compliance.models import RequestKind, RequestStatus, SubjectRequest
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging.tests.cases import attach, clinician_access, connect_lab, draft_case
from casebridge.retention import policies
from casebridge.retention.models import DestructionCertificate, RecordType
from casebridge.sharing import actions as sharing
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject
from casebridge.vault.tests.samples import binary_stl

YEAR = timedelta(days=365)


# --- deadlines (pure, fixed dates) ----------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "received", "gdpr", "extended", "due"),
    [
        # HIPAA access: 30 days, one 30-day extension (164.524(b)(2)).
        (RequestKind.ACCESS, date(2026, 3, 10), False, False, date(2026, 4, 9)),
        (RequestKind.ACCESS, date(2026, 3, 10), False, True, date(2026, 5, 9)),
        # GDPR alone would be one month (10 April): HIPAA's 30 days (9 April) is earlier.
        (RequestKind.ACCESS, date(2026, 3, 10), True, False, date(2026, 4, 9)),
        # February: one month from 31 January is the end of February; HIPAA's 30 days come later.
        (RequestKind.ACCESS, date(2026, 1, 31), True, False, date(2026, 2, 28)),
        (RequestKind.ERASURE, date(2028, 1, 31), True, False, date(2028, 2, 29)),  # a leap year
        # GDPR extension: two further months (Art. 12(3)).
        (RequestKind.ERASURE, date(2026, 11, 30), True, True, date(2027, 2, 28)),
        (RequestKind.RESTRICTION, date(2026, 12, 15), True, False, date(2027, 1, 15)),
        # HIPAA sets no deadline for erasure (no such right) or restriction (164.522(a)).
        (RequestKind.ERASURE, date(2026, 3, 10), False, False, None),
        (RequestKind.RESTRICTION, date(2026, 3, 10), False, True, None),
        # HIPAA amendment: 60 days, one 30-day extension (164.526(b)(2)); GDPR Art. 16 under Art. 12(3).
        (RequestKind.AMENDMENT, date(2026, 3, 10), False, False, date(2026, 5, 9)),
        (RequestKind.AMENDMENT, date(2026, 3, 10), False, True, date(2026, 6, 8)),
        (RequestKind.AMENDMENT, date(2026, 3, 10), True, False, date(2026, 4, 10)),
    ],
)
def test_the_deadline_follows_the_law_that_applies(
    kind: str, received: date, gdpr: bool, extended: bool, due: date | None
) -> None:
    assert requests.due_on(kind, received, under_gdpr=gdpr, extended=extended) == due


def test_each_kind_cites_its_law() -> None:
    assert [law.citation for law in requests.laws(RequestKind.ACCESS, False)] == ["45 CFR 164.524"]
    assert [law.citation for law in requests.laws(RequestKind.ERASURE, True)] == [
        "45 CFR 164.526",
        "GDPR Art. 17",
        "GDPR Art. 12(3)",
    ]
    assert "GDPR Art. 18" in [law.citation for law in requests.laws(RequestKind.RESTRICTION, True)]
    assert [law.citation for law in requests.laws(RequestKind.AMENDMENT, True)] == [
        "45 CFR 164.526",
        "GDPR Art. 16",
        "GDPR Art. 12(3)",
    ]


# --- the register ----------------------------------------------------------------------------
def _officer(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["compliance_officer"], personas.practice)
    assert access is not None
    return access


def _closed_case(owner: OrgAccess, patient_name: str, closed_ago: timedelta) -> Case:
    case = draft_case(owner, patient_name=patient_name)
    attach(owner, case, binary_stl(800), kind="scan", label="upper")
    Case.objects.filter(pk=case.pk).update(status=Status.COMPLETED, completed_at=timezone.now() - closed_ago)
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=date(1970, 1, 1))  # an adult when treated
    case.refresh_from_db()
    return case


def _request(personas: Personas, case: Case, kind: str, *, gdpr: bool = True) -> SubjectRequest:
    return requests.register(
        _officer(personas),
        patient=case.patient,
        kind=kind,
        received_on=timezone.localdate() - timedelta(days=3),
        under_gdpr=gdpr,
    )


def _send_to_specialist(owner: OrgAccess, case: Case, *, deidentify: bool = True, reason: str = "") -> None:
    """The case sent, and its files shared by an external link with a specialist."""
    Case.objects.filter(pk=case.pk).update(status=Status.SUBMITTED)
    case.refresh_from_db()
    sharing.create_link(
        owner,
        case,
        attachments=list(case.attachments.all()),
        recipient_email="specialist@example.test",
        purpose="Second opinion",
        deidentify=deidentify,
        reason=reason,
    )


@pytest.fixture
def owner(personas: Personas, vault_home: Path) -> OrgAccess:
    return clinician_access(personas, "owner")


@pytest.mark.django_db
def test_registering_checks_everything_and_audits_without_the_name(personas: Personas, owner: OrgAccess) -> None:
    case = draft_case(owner, patient_name="Jane Roe")
    officer = _officer(personas)
    with pytest.raises(ValidationError) as refused:
        requests.register(
            officer, patient=None, kind="forget", received_on=timezone.localdate() + timedelta(days=1), under_gdpr=False
        )
    assert set(refused.value.message_dict) == {"patient", "kind", "received_on"}
    other = resolve(personas.outsider, personas.other_practice)
    assert other is not None
    with pytest.raises(ValidationError, match="your organization's patients"):  # another organization's
        requests.register(
            other, patient=case.patient, kind=RequestKind.ACCESS, received_on=timezone.localdate(), under_gdpr=False
        )
    with pytest.raises(Forbidden):  # a clinician does not manage compliance
        requests.register(
            clinician_access(personas, "clinician"),
            patient=case.patient,
            kind=RequestKind.ACCESS,
            received_on=timezone.localdate(),
            under_gdpr=False,
        )
    assert not SubjectRequest.objects.exists()

    made = _request(personas, case, RequestKind.ACCESS, gdpr=False)
    event = Event.objects.get(action="compliance.request.registered")
    assert event.patient_ref == str(case.patient_id)
    assert "Jane" not in json.dumps(event.details)
    assert event.details["due_on"] == (made.received_on + timedelta(days=30)).isoformat()


@pytest.mark.django_db
def test_one_extension_with_its_reason(personas: Personas, owner: OrgAccess) -> None:
    case = draft_case(owner)
    made = _request(personas, case, RequestKind.ACCESS, gdpr=False)
    with pytest.raises(ValidationError, match="few words"):
        requests.extend(_officer(personas), made, "")
    requests.extend(_officer(personas), made, "Records in two systems, retrieving the older ones.")
    assert requests.due_of(made) == made.received_on + timedelta(days=60)
    with pytest.raises(ValidationError, match="one extension"):
        requests.extend(_officer(personas), made, "Still more time please.")
    late = requests.register(
        _officer(personas),
        patient=case.patient,
        kind=RequestKind.ACCESS,
        received_on=timezone.localdate() - timedelta(days=45),
        under_gdpr=False,
    )
    with pytest.raises(ValidationError, match="has passed"):
        requests.extend(_officer(personas), late, "Too late for that.")
    assert SubjectRequest.objects.get(pk=late.pk).extended_at is None


# --- access: the copy ------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_copy_holds_every_case_file_message_and_disclosure_with_an_index(
    personas: Personas, owner: OrgAccess
) -> None:
    case = draft_case(owner, patient_name="Jane Roe")
    content = binary_stl(900)
    attach(owner, case, content, kind="scan", label="upper")
    Message.objects.create(case=case, author=owner.actor, author_org=owner.organization, body="Shade A2 please")
    _send_to_specialist(owner, case, deidentify=False, reason="the specialist needs the originals")
    someone_else = draft_case(owner, patient_name="John Doe")
    attach(owner, someone_else, binary_stl(700), kind="scan", label="lower")
    made = _request(personas, case, RequestKind.ACCESS)
    client = signed_in_client(personas.members["compliance_officer"])

    response = client.get(reverse("subject_request_export", args=[personas.practice.slug, made.pk]))

    assert response.status_code == 200
    assert "Jane" not in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    index = json.loads(archive.read("index.json"))
    assert index["cases"] == [case.number]  # only this patient's cases
    stl = f"{case.number}/files/{case.number}_upper_1.stl"
    stored_hash = vault.get_version(case.attachments.get().stored_object).sha256
    assert stl in names and hashlib.sha256(archive.read(stl)).hexdigest() == stored_hash  # decrypted as stored
    assert archive.read(stl)[80:] == content[80:]  # the triangles as uploaded (the STL header is cleaned)
    assert index["files"][0]["sha256"] == stored_hash
    record = json.loads(archive.read(f"{case.number}/case.json"))
    assert record["messages"][0]["text"] == "Shade A2 please"
    assert json.loads(archive.read("patient.json"))["name"] == "Jane Roe"
    disclosures = list(csv.DictReader(io.StringIO(archive.read("disclosures.csv").decode())))
    assert [d["recipient"] for d in disclosures] == ["specialist@example.test"]
    assert not any(someone_else.number in name for name in names)
    event = Event.objects.get(action="compliance.request.exported")
    assert event.patient_ref == str(case.patient_id) and event.details["cases"] == [case.number]
    assert "Jane" not in json.dumps(event.details)


# --- erasure ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_erasure_under_hipaa_alone_is_refused_with_the_reason(personas: Personas, owner: OrgAccess) -> None:
    case = _closed_case(owner, "Jane Roe", 30 * YEAR)
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    made = _request(personas, case, RequestKind.ERASURE, gdpr=False)
    requests.erase(_officer(personas), made)
    made.refresh_from_db()
    assert made.status == RequestStatus.REFUSED and "no right of erasure" in made.decision_reason
    assert StoredObject.objects.filter(attachment__case=case, destroyed_at__isnull=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("obstacle", ["hold", "floor", "no_state", "open"])
def test_erasure_refused_under_hold_or_retention_changes_nothing(
    personas: Personas, owner: OrgAccess, obstacle: str
) -> None:
    case = _closed_case(owner, "Jane Roe", 2 * YEAR if obstacle == "floor" else 30 * YEAR)
    if obstacle != "no_state":
        policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    if obstacle == "hold":
        policies.place_hold(owner, reason="Litigation request 2026-14", patient=case.patient)
    if obstacle == "open":
        Case.objects.filter(pk=case.pk).update(status=Status.IN_PRODUCTION)
    made = _request(personas, case, RequestKind.ERASURE)
    expected = {
        "hold": "legal hold",
        "floor": "must be kept until",
        "no_state": "choose the state",
        "open": "still open",
    }[obstacle]

    client = signed_in_client(personas.members["compliance_officer"])
    page = client.get(reverse("subject_request", args=[personas.practice.slug, made.pk]))
    assert expected in page.content.decode()  # shown before deciding
    client.post(reverse("subject_request", args=[personas.practice.slug, made.pk]), {"operation": "erase"})

    made.refresh_from_db()
    assert made.status == RequestStatus.REFUSED and expected in made.decision_reason
    assert all(f.destroyed_at is None for f in StoredObject.objects.filter(attachment__case=case))
    assert Patient.objects.get(pk=case.patient_id).name == "Jane Roe"
    assert not DestructionCertificate.objects.exists()
    assert not Event.objects.filter(action="file.destroyed").exists()
    refused = Event.objects.get(action="compliance.request.refused")
    assert refused.details["by"] == "law_or_retention" and "Jane" not in json.dumps(refused.details)


@pytest.mark.django_db
def test_an_allowed_erasure_shreds_through_the_retention_path(personas: Personas, owner: OrgAccess) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    case = _closed_case(owner, "Jane Roe", 8 * YEAR)
    kept = _closed_case(owner, "John Doe", 8 * YEAR)  # another patient: untouched
    for each in (case, kept):
        Message.objects.create(case=each, author=owner.actor, author_org=owner.organization, body="Shade A1")
    made = _request(personas, case, RequestKind.ERASURE)

    requests.erase(_officer(personas), made)

    made.refresh_from_db()
    assert made.status == RequestStatus.COMPLETED
    assert all(f.destroyed_at is not None for f in StoredObject.objects.filter(attachment__case=case))
    assert all(f.destroyed_at is None for f in StoredObject.objects.filter(attachment__case=kept))
    certificate = DestructionCertificate.objects.get()
    assert policies.verify_certificate(certificate) and certificate.items == 1
    assert "Jane" not in certificate.body and str(certificate.pk) in made.decision_reason
    assert Event.objects.filter(action="file.destroyed", patient_ref=str(case.patient_id)).count() == 1
    case.refresh_from_db()
    assert case.patient.name.startswith("Erased patient") and case.patient.date_of_birth is None
    assert Message.objects.get(case=case).body == requests.ERASED
    assert Message.objects.get(case=kept).body == "Shade A1"
    assert Case.objects.get(pk=kept.pk).patient.name == "John Doe"
    with pytest.raises(ValidationError, match="already decided"):
        requests.erase(_officer(personas), made)


@pytest.mark.django_db
def test_erasing_asks_an_officer_who_signed_in_a_while_ago_to_confirm_their_identity_first(
    personas: Personas, owner: OrgAccess
) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    case = _closed_case(owner, "Jane Roe", 8 * YEAR)
    made = _request(personas, case, RequestKind.ERASURE)
    client = signed_in_client(personas.members["compliance_officer"], reauthenticated=False)
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 600  # signed in ten minutes ago, identity not confirmed since
    session.save()
    url = reverse("subject_request", args=[personas.practice.slug, made.pk])

    assert client.get(url).status_code == 200  # reading the request needs nothing more
    assert client.post(url, {"operation": "extend", "text": "Records are at a second site."}).status_code == 302
    response = client.post(url, {"operation": "erase"})

    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    made.refresh_from_db()
    assert made.status == RequestStatus.EXTENDED  # the extension was recorded, the erasure was not
    assert all(f.destroyed_at is None for f in StoredObject.objects.filter(attachment__case=case))
    assert not DestructionCertificate.objects.exists()


# --- amendment -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_accepted_amendment_is_appended_to_every_case_and_names_who_holds_the_information(
    personas: Personas, owner: OrgAccess
) -> None:
    connect_lab(personas)
    case = draft_case(owner, patient_name="Jane Roe", lab=personas.lab)
    attach(owner, case, binary_stl(800), kind="scan", label="upper")
    _send_to_specialist(owner, case)
    second = draft_case(owner, patient_name="Jane Roe")
    Case.objects.filter(pk=second.pk).update(patient=case.patient)
    someone_else = draft_case(owner, patient_name="John Doe")
    made = _request(personas, case, RequestKind.AMENDMENT, gdpr=False)
    client = signed_in_client(personas.members["compliance_officer"])
    url = reverse("subject_request", args=[personas.practice.slug, made.pk])

    page = client.get(url).content.decode()
    assert "164.526" in page and personas.lab.name in page and "specialist@example.test" in page
    assert requests.holders(made) == [personas.lab.name, "specialist@example.test"]
    assert client.post(url, {"operation": "amend", "text": "x"}).status_code == 302  # too short: nothing changes
    made.refresh_from_db()
    assert made.status == RequestStatus.OPEN and not Message.objects.exists()

    client.post(url, {"operation": "amend", "text": "Allergy to latex, not to penicillin."})

    made.refresh_from_db()
    assert made.status == RequestStatus.COMPLETED and made.decision_reason == "Allergy to latex, not to penicillin."
    appended = Message.objects.filter(case__patient=case.patient)
    assert appended.count() == 2 and all("Allergy to latex, not to penicillin." in m.body for m in appended)
    assert {m.case_id for m in appended} == {case.pk, second.pk}
    assert not Message.objects.filter(case=someone_else).exists()
    event = Event.objects.get(action="compliance.request.completed")
    assert event.details["cases"] == 2 and "latex" not in json.dumps(event.details)
    with pytest.raises(ValidationError, match="already decided"):
        requests.amend(_officer(personas), made, "Another amendment entirely.")
    access = _request(personas, case, RequestKind.ACCESS)
    with pytest.raises(ValidationError, match="not a request for an amendment"):
        requests.amend(_officer(personas), access, "Allergy to latex, not to penicillin.")


@pytest.mark.django_db
def test_a_refused_amendment_takes_the_patients_statement_of_disagreement_once(
    personas: Personas, owner: OrgAccess
) -> None:
    case = draft_case(owner, patient_name="Jane Roe")
    made = _request(personas, case, RequestKind.AMENDMENT, gdpr=False)
    with pytest.raises(ValidationError, match="refused amendment"):
        requests.disagree(_officer(personas), made, "The record is wrong about my allergy.")
    requests.refuse(_officer(personas), made, "The record is accurate and complete: the allergy test of 2024.")
    clinician = signed_in_client(personas.members["clinician"])
    url = reverse("subject_request", args=[personas.practice.slug, made.pk])
    assert clinician.post(url, {"operation": "disagree", "text": "The record is wrong."}).status_code == 403

    signed_in_client(personas.members["compliance_officer"]).post(
        url, {"operation": "disagree", "text": "The record is wrong about my allergy."}
    )

    made.refresh_from_db()
    assert made.disagreement == "The record is wrong about my allergy."
    note = Message.objects.get(case=case).body
    assert "accurate and complete" in note and "The record is wrong about my allergy." in note
    assert Event.objects.filter(action="compliance.request.disagreement").count() == 1
    with pytest.raises(ValidationError, match="already recorded"):
        requests.disagree(_officer(personas), made, "A second statement.")
    assert Message.objects.filter(case=case).count() == 1


# --- restriction -----------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_restriction_refuses_new_sharing_through_the_policy_until_lifted(
    personas: Personas, owner: OrgAccess
) -> None:
    connect_lab(personas)
    case = draft_case(owner, patient_name="Jane Roe", lab=personas.lab)
    attach(owner, case, binary_stl(800), kind="scan", label="upper")
    other = draft_case(owner, patient_name="John Doe", lab=personas.lab)
    made = _request(personas, case, RequestKind.RESTRICTION)
    assert sharing_refusal(case) == ""  # registered, not yet agreed: nothing changes

    requests.restrict(_officer(personas), made, "No sharing outside the practice, agreed by phone.")

    assert "restrict" in sharing_refusal(case) and sharing_refusal(other) == ""
    with pytest.raises(ValidationError, match="restrict"):
        case_actions.submit_case(owner, case)
    assert Case.objects.get(pk=case.pk).status == Status.DRAFT
    with pytest.raises(Forbidden, match="restrict"):
        _send_to_specialist(owner, case)
    client = signed_in_client(personas.members["owner"])
    page = client.get(reverse("case_detail", args=[personas.practice.slug, case.number]))
    assert "restrict the sharing" in page.content.decode()
    response = client.post(
        reverse("case_share", args=[personas.practice.slug, case.number]),
        {
            "shared_files": [str(case.attachments.get().stored_object_id)],
            "recipient_email": "specialist@example.test",
            "purpose": "Second opinion",
            "expires_in_days": "7",
            "max_downloads": "5",
        },
    )
    assert response.status_code == 403 and "restrict the sharing" in response.content.decode()
    assert not case.external_links.exists()

    requests.lift(_officer(personas), made, "The patient consents to the referral.")
    assert sharing_refusal(case) == ""
    assert Event.objects.filter(action="compliance.request.restriction_lifted").exists()


# --- the pages -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_pages_for_compliance_managers_of_the_organization_only(personas: Personas, owner: OrgAccess) -> None:
    case = draft_case(owner, patient_name="Jane Roe")
    made = _request(personas, case, RequestKind.ACCESS)
    slug = personas.practice.slug
    urls = [
        reverse("subject_requests", args=[slug]),
        reverse("subject_request", args=[slug, made.pk]),
        reverse("subject_request_export", args=[slug, made.pk]),
    ]
    officer = signed_in_client(personas.members["compliance_officer"])
    listing = officer.get(urls[0])
    assert (
        listing.status_code == 200 and "164.524" in listing.content.decode() and "Jane Roe" in listing.content.decode()
    )
    detail = officer.get(urls[1]).content.decode()
    assert "45 CFR 164.524" in detail and "GDPR Art. 15" in detail
    assert reverse("subject_requests", args=[slug]) in officer.get(reverse("compliance", args=[slug])).content.decode()
    for role in ("clinician", "staff", "auditor"):
        client = signed_in_client(personas.members[role])
        assert [client.get(url).status_code for url in urls] == [403, 403, 403], role
    outsider = signed_in_client(personas.outsider)
    assert [outsider.get(url.replace(slug, personas.other_practice.slug)).status_code for url in urls[1:]] == [404, 404]
    assert not Event.objects.filter(action="compliance.request.exported").exists()

    registered = officer.post(
        urls[0],
        {"patient": str(case.patient_id), "kind": "erasure", "received_on": timezone.localdate().isoformat()},
    )
    assert registered.status_code == 302
    stranger = draft_case(clinician_access_of_other(personas), patient_name="Not Ours")
    refused = officer.post(
        urls[0],
        {"patient": str(stranger.patient_id), "kind": "access", "received_on": timezone.localdate().isoformat()},
    )
    assert refused.status_code == 400
    assert SubjectRequest.objects.count() == 2


def clinician_access_of_other(personas: Personas) -> OrgAccess:
    access = resolve(personas.outsider, personas.other_practice)
    assert access is not None
    return access


@pytest.mark.django_db
def test_a_minor_at_treatment_is_kept_until_the_states_age(personas: Personas, owner: OrgAccess) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    case = _closed_case(owner, "Jane Roe", 8 * YEAR)
    born = (timezone.now() - 12 * YEAR).date()  # four at treatment, twelve now
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=born)
    made = _request(personas, case, RequestKind.ERASURE)
    requests.erase(_officer(personas), made)
    made.refresh_from_db()
    assert made.status == RequestStatus.REFUSED and "minor" in made.decision_reason
    assert all(f.destroyed_at is None for f in StoredObject.objects.filter(attachment__case=case))


@pytest.mark.django_db
def test_the_officer_records_the_answer_or_refuses_with_the_reason(personas: Personas, owner: OrgAccess) -> None:
    case = draft_case(owner, patient_name="Jane Roe")
    given = _request(personas, case, RequestKind.ACCESS)
    refused = _request(personas, case, RequestKind.RESTRICTION)
    client = signed_in_client(personas.members["compliance_officer"])
    slug = personas.practice.slug

    client.post(reverse("subject_request", args=[slug, given.pk]), {"operation": "provided", "text": ""})
    client.post(reverse("subject_request", args=[slug, given.pk]), {"operation": "restrict", "text": "Agreed today"})
    given.refresh_from_db()
    assert given.status == RequestStatus.OPEN  # no note, then the wrong kind: nothing recorded
    client.post(reverse("subject_request", args=[slug, given.pk]), {"operation": "provided", "text": "Handed over"})
    client.post(
        reverse("subject_request", args=[slug, refused.pk]), {"operation": "refuse", "text": "Identity not verified"}
    )

    given.refresh_from_db()
    refused.refresh_from_db()
    assert given.status == RequestStatus.COMPLETED and given.decision_reason == "Handed over"
    assert refused.status == RequestStatus.REFUSED and refused.decision_reason == "Identity not verified"
    assert sharing_refusal(case) == ""  # a refused restriction restricts nothing
    page = client.get(reverse("subject_request", args=[slug, refused.pk])).content.decode()
    assert "Identity not verified" in page
    events = Event.objects.filter(action__startswith="compliance.request.").values_list("details", flat=True)
    assert not any("Identity" in json.dumps(d) or "Handed" in json.dumps(d) for d in events)  # words stay out
