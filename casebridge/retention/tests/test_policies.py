"""Retention policies, legal holds and enforcement: nothing goes without a policy, no policy goes
below its legal floor, a hold stops everything it covers, and each run leaves a signed
certificate of what it crypto-shredded."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casebridge.access.policy import OrgAccess
from casebridge.audit.models import Event
from casebridge.cases.models import Case, Message, Patient, Status
from casebridge.core.testing import Personas
from casebridge.imaging.tests.cases import attach, clinician_access, draft_case
from casebridge.retention import policies
from casebridge.retention.certificate_pdf import render_certificate
from casebridge.retention.models import DestructionCertificate, RecordType, RetentionPolicy
from casebridge.vault.models import StoredObject
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
YEAR = timedelta(days=365)


def _closed_case(access: OrgAccess, *, closed: datetime, born: date | None = date(1970, 1, 1)) -> Case:
    case = draft_case(access, patient_name=f"Patient {Case.objects.count() + 1}")  # one patient each
    attach(access, case, binary_stl(800), kind="scan", label="upper")
    Case.objects.filter(pk=case.pk).update(status=Status.COMPLETED, completed_at=closed)
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=born)
    case.refresh_from_db()
    return case


def _files(case: Case) -> list[StoredObject]:
    return list(StoredObject.objects.filter(attachment__case=case))


@pytest.fixture
def owner(personas: Personas, vault_home: Path) -> OrgAccess:
    return clinician_access(personas, "owner")


def test_every_state_rule_names_its_source_and_its_numbers() -> None:
    rules = policies.state_rules()
    assert {"US-TX", "US-FL", "US-NH", "US-KS", "US-KY", "US-MA", "US-MI", "US-MO", "US-NC", "US-OR"} <= set(rules)
    assert {"US-PA", "US-VA", "US-WA", "US-AZ", "US-DC", "US-NV", "US-WI"} <= set(rules)
    for code, rule in rules.items():
        assert code.startswith("US-") and len(code) == 5 and rule["state"] and rule["rule"]
        assert rule["source"] and rule["url"].startswith(("https://", "http://")), code
        assert 1 <= rule["years_after_last_treatment"] <= 30
        assert rule["minor_until_age"] is None or 18 <= rule["minor_until_age"] <= 30


def test_no_policy_can_go_below_its_legal_floor(owner: OrgAccess) -> None:
    with pytest.raises(ValidationError, match="at least 2192 days"):
        policies.set_policy(owner, RecordType.AUDIT_EVENTS, 5 * 365)
    with pytest.raises(ValidationError, match=r"22 Tex\. Admin\. Code"):
        policies.set_policy(owner, RecordType.CASE_FILES, 4 * 365, "US-TX")
    with pytest.raises(ValidationError, match="Choose the state"):
        policies.set_policy(owner, RecordType.CASE_FILES, 10 * 365)
    with pytest.raises(ValidationError, match="at least 7 days"):
        policies.set_policy(owner, RecordType.UNATTACHED_UPLOADS, 1)
    assert not RetentionPolicy.objects.exists()
    policies.set_policy(owner, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    policies.set_policy(owner, RecordType.AUDIT_EVENTS, None)  # for ever is always allowed
    assert Event.objects.filter(action="retention.policy_set").count() == 2


@pytest.mark.parametrize("code", sorted(policies.state_rules()))
def test_no_state_preset_can_be_set_below_its_rule(owner: OrgAccess, code: str) -> None:
    rule = policies.state_rules()[code]
    floor = rule["years_after_last_treatment"] * 365 + 2
    assert policies.floor_days(RecordType.CASE_FILES, code) == floor
    with pytest.raises(ValidationError, match=f"at least {floor} days") as refused:
        policies.set_policy(owner, RecordType.CASE_FILES, floor - 1, code)
    assert rule["source"] in str(refused.value)
    assert not RetentionPolicy.objects.exists()
    policy = policies.set_policy(owner, RecordType.CASE_FILES, floor, code)
    assert (policy.keep_days, policy.preset) == (floor, code)


def test_every_state_is_either_listed_or_open_to_a_declared_rule() -> None:
    listed = {code.removeprefix("US-") for code in policies.state_rules()}
    assert listed <= set(policies.US_STATES) and len(policies.US_STATES) == 51  # 50 states and DC
    assert set(policies.unlisted_states()) == set(policies.US_STATES) - listed


def _declare(access: OrgAccess, **changes: Any) -> Any:
    state = next(iter(policies.unlisted_states()))
    values: dict[str, Any] = {
        "state": state,
        "years": 7,
        "minor_until_age": 21,
        "source": "State Dental Board Rule 12.3",
        "url": "https://example.org/rule-12-3",
    }
    return policies.declare_state_rule(access, **(values | changes))


def test_a_state_not_listed_gets_the_rule_its_organization_declares_as_its_floor(owner: OrgAccess) -> None:
    with pytest.raises(ValidationError, match="Declare your state's rule first"):
        policies.set_policy(owner, RecordType.CASE_FILES, 10 * 365, policies.DECLARED)
    declared = _declare(owner)

    assert policies.floor_days(RecordType.CASE_FILES, policies.DECLARED, owner.organization) == 7 * 365 + 2
    with pytest.raises(
        ValidationError, match=r"at least 2557 days .* under State Dental Board Rule 12\.3 \(as declared"
    ):
        policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, policies.DECLARED)
    assert not RetentionPolicy.objects.exists()
    policies.set_policy(owner, RecordType.CASE_FILES, 7 * 365 + 2, policies.DECLARED)

    now = timezone.now()
    adult = _closed_case(owner, closed=now - 8 * YEAR)
    child = _closed_case(owner, closed=now - 8 * YEAR, born=(now - 20 * YEAR).date())  # 12 then, 20 now
    inside = _closed_case(owner, closed=now - 6 * YEAR)
    items, kept = policies.due(owner.organization)
    assert {i.case.number for i in items} == {adult.number}
    rule = policies.rule_for(policies.DECLARED, owner.organization)
    assert rule is not None
    source = rule["source"]
    assert [(k.case_number, k.why) for k in kept] == [
        (child.number, f"a minor when treated: kept until age 21 ({source})")
    ]

    certificate = policies.enforce(owner.organization)
    assert certificate is not None and certificate.items == 1
    named = json.loads(certificate.body)["policies"]["case_files"]["rule"]
    assert named["state"] == policies.US_STATES[declared.state] and named["years_after_last_treatment"] == 7
    assert named["source"].startswith("State Dental Board Rule 12.3 (as declared by the organization on ")
    assert all(f.destroyed_at is None for f in _files(inside) + _files(child))
    event = Event.objects.get(action="retention.state_rule_declared")
    assert event.details["years_after_last_treatment"] == 7 and event.details["state"] == declared.state


def test_a_declared_rule_is_refused_for_a_listed_state_or_numbers_no_state_has_and_changes_nothing(
    owner: OrgAccess,
) -> None:
    for changes, message in [
        ({"state": "TX"}, "Texas's rule is in the list"),
        ({"state": "XX"}, "Choose the state"),
        ({"years": 0}, "from 1 to 30"),
        ({"years": 31}, "from 1 to 30"),
        ({"minor_until_age": 17}, "from 18 to 30"),
        ({"source": "rule"}, "in 5 to 200 characters"),
        ({"url": "javascript:alert(1)"}, "web address"),
    ]:
        with pytest.raises(ValidationError, match=message):
            _declare(owner, **changes)
    assert not policies.DeclaredStateRule.objects.exists()
    assert not Event.objects.filter(action="retention.state_rule_declared").exists()


def test_a_declaration_for_a_state_since_added_to_the_table_keeps_everything(
    owner: OrgAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = _declare(owner, years=3)
    policies.set_policy(owner, RecordType.CASE_FILES, 3 * 365 + 2, policies.DECLARED)
    case = _closed_case(owner, closed=timezone.now() - 5 * YEAR)
    assert [i.case.number for i in policies.due(owner.organization)[0]] == [case.number]

    added = {**policies.state_rules(), f"US-{declared.state}": policies.state_rules()["US-TX"]}
    monkeypatch.setattr(policies, "state_rules", lambda: added)

    assert policies.due(owner.organization) == ([], [])
    assert policies.floor_days(RecordType.CASE_FILES, policies.DECLARED, owner.organization) == 0
    assert any("choose the state" in r for r in policies.erasure_refusals(case.patient))


def test_without_a_policy_nothing_is_due(owner: OrgAccess) -> None:
    _closed_case(owner, closed=timezone.now() - 30 * YEAR)
    assert policies.due(owner.organization) == ([], [])
    assert policies.enforce(owner.organization) is None


def test_enforcement_shreds_what_is_due_and_signs_a_certificate(owner: OrgAccess) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    old = _closed_case(owner, closed=timezone.now() - 7 * YEAR)
    young = _closed_case(owner, closed=timezone.now() - 2 * YEAR)

    certificate = policies.enforce(owner.organization)

    assert certificate is not None and certificate.items == 1
    assert all(f.destroyed_at is not None for f in _files(old))
    assert all(f.destroyed_at is None for f in _files(young))
    body = json.loads(certificate.body)
    assert [d["case"] for d in body["destroyed"]] == [old.number]
    assert body["destroyed"][0]["versions"][0]["sha256"] == _files(old)[0].versions.first().sha256
    assert old.patient.name not in certificate.body  # case numbers and hashes, never the patient
    assert policies.verify_certificate(certificate)
    certificate.body = certificate.body.replace(old.number, young.number)
    assert not policies.verify_certificate(certificate)  # an edited certificate no longer verifies
    assert Event.objects.filter(action="retention.destroyed").exists()
    assert Event.objects.filter(action="file.destroyed", actor_type="system").count() == 1


@pytest.mark.parametrize("scope", ["case", "patient", "organization"])
def test_a_legal_hold_stops_enforcement_and_manual_destruction(owner: OrgAccess, scope: str) -> None:
    from casebridge.access.principal import Principal
    from casebridge.cases.actions import destroy_file

    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    case = _closed_case(owner, closed=timezone.now() - 7 * YEAR)
    kwargs = {"case": {"case": case}, "patient": {"patient": case.patient}, "organization": {}}[scope]
    hold = policies.place_hold(owner, reason="Litigation request 2026-14", **kwargs)

    assert policies.enforce(owner.organization) is None
    with pytest.raises(policies.UnderLegalHold):
        destroy_file(Principal(owner.actor, None), _files(case)[0], reason="asked by the patient")
    assert all(f.destroyed_at is None for f in _files(case))

    policies.lift_hold(owner, hold, reason="Matter closed")
    assert policies.enforce(owner.organization) is not None
    actions = set(Event.objects.values_list("action", flat=True))
    assert {"retention.hold_placed", "retention.hold_lifted"} <= actions


def test_a_minor_is_kept_until_the_states_age_and_an_unknown_birth_date_is_kept_and_said(owner: OrgAccess) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 5 * 365 + 2, "US-TX")
    now = timezone.now()
    child = _closed_case(owner, closed=now - 6 * YEAR, born=(now - 20 * YEAR).date())  # 14 when treated, 20 now
    unknown = _closed_case(owner, closed=now - 6 * YEAR, born=None)
    grown = _closed_case(owner, closed=now - 6 * YEAR, born=(now - 22 * YEAR).date())  # 16 then, 22 now

    items, kept = policies.due(owner.organization)

    assert {i.case.number for i in items} == {grown.number}
    reasons = {k.case_number: k.why for k in kept}
    assert "until age 21" in reasons[child.number] and "date of birth is unknown" in reasons[unknown.number]


def test_nevada_keeps_whoever_was_treated_as_a_minor_until_23(owner: OrgAccess) -> None:
    """NRS 629.051: five years, and no record of a person under 23 is destroyed: a patient treated
    at 15 is still kept at 21, past the five years; one treated at 17 who is 23 now is due."""
    floor = policies.floor_days(RecordType.CASE_FILES, "US-NV")
    policies.set_policy(owner, RecordType.CASE_FILES, floor, "US-NV")
    now = timezone.now()
    young = _closed_case(owner, closed=now - 6 * YEAR, born=(now - 21.5 * YEAR).date())  # 15 then, 21 now
    grown = _closed_case(owner, closed=now - 6 * YEAR, born=(now - 23.5 * YEAR).date())  # 17 then, 23 now
    _closed_case(owner, closed=now - 4 * YEAR, born=(now - 40 * YEAR).date())  # inside the five years: neither

    items, kept = policies.due(owner.organization)

    assert {i.case.number for i in items} == {grown.number}
    assert {k.case_number: k.why for k in kept} == {
        young.number: "a minor when treated: kept until age 23 (Nev. Rev. Stat. 629.051)"
    }


def _message(case: Case, body: str) -> Message:
    return Message.objects.create(case=case, author_org=case.practice, body=body)


def test_messages_of_closed_cases_are_erased_under_the_case_files_rule(owner: OrgAccess) -> None:
    with pytest.raises(ValidationError, match="Choose the state for the files of closed cases first"):
        policies.set_policy(owner, RecordType.MESSAGES, 10 * 365)
    policies.set_policy(owner, RecordType.CASE_FILES, None, "US-TX")  # files kept for ever, under Texas's rule
    with pytest.raises(ValidationError, match=r"at least 1827 days .* under 22 Tex\. Admin\. Code"):
        policies.set_policy(owner, RecordType.MESSAGES, 3 * 365)
    policies.set_policy(owner, RecordType.MESSAGES, 6 * 365)
    now = timezone.now()
    old = _closed_case(owner, closed=now - 7 * YEAR)
    held = _closed_case(owner, closed=now - 7 * YEAR)
    child = _closed_case(owner, closed=now - 7 * YEAR, born=(now - 19 * YEAR).date())  # 12 then, 19 now
    young = _closed_case(owner, closed=now - 2 * YEAR)
    said = {case.pk: _message(case, f"Margin on 36 for {case.patient.name}?") for case in (old, held, child, young)}
    policies.place_hold(owner, reason="Records request from counsel", case=held)

    items, kept = policies.due(owner.organization)
    assert [(i.kind, i.record.pk) for i in items] == [("message", said[old.pk].pk)]
    assert {k.case_number for k in kept} == {held.number, child.number}

    certificate = policies.enforce(owner.organization)

    assert certificate is not None and certificate.items == 1
    texts = dict(Message.objects.values_list("case_id", "body"))
    assert texts[old.pk] == policies.ERASED_BY_POLICY
    assert all(texts[c.pk] == said[c.pk].body for c in (held, child, young))
    assert all(f.destroyed_at is None for f in _files(old))  # the files' own policy keeps them for ever
    line = json.loads(certificate.body)["destroyed"][0]
    assert (line["kind"], line["record"], line["case"]) == ("message", str(said[old.pk].pk), old.number)
    assert line["versions"][0]["sha256"] == hashlib.sha256(said[old.pk].body.encode()).hexdigest()
    assert old.patient.name not in certificate.body and policies.verify_certificate(certificate)
    assert policies.enforce(owner.organization) is None  # erased once: nothing is due again
    pdf = render_certificate(certificate, signature_ok=True)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_an_owner_postpones_the_run(owner: OrgAccess) -> None:
    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    _closed_case(owner, closed=timezone.now() - 7 * YEAR)
    with pytest.raises(ValidationError):
        policies.postpone(owner, until=timezone.now().date() - timedelta(days=1), reason="audit next week")
    policies.postpone(owner, until=timezone.now().date() + timedelta(days=30), reason="State audit next month")
    assert policies.enforce(owner.organization) is None
    assert policies.enforce(owner.organization, timezone.now() + timedelta(days=31)) is not None


def test_uploads_never_attached_go_after_their_period(owner: OrgAccess) -> None:
    from casebridge.imaging.tests.cases import stored

    policies.set_policy(owner, RecordType.UNATTACHED_UPLOADS, 30)
    old, new = stored(owner, binary_stl(500)), stored(owner, binary_stl(600))
    StoredObject.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))

    certificate = policies.enforce(owner.organization)

    assert certificate is not None and json.loads(certificate.body)["destroyed"][0]["kind"] == "upload"
    old.refresh_from_db(), new.refresh_from_db()
    assert old.destroyed_at is not None and new.destroyed_at is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_years=st.integers(min_value=5, max_value=12),
    closed_years_ago=st.lists(st.floats(min_value=0, max_value=15), min_size=1, max_size=4),
    held=st.lists(st.booleans(), min_size=4, max_size=4),
    clock_shift_days=st.integers(min_value=-400, max_value=4000),
)
def test_nothing_held_or_younger_than_its_floor_and_policy_is_ever_destroyed(
    owner: OrgAccess, keep_years: int, closed_years_ago: list[float], held: list[bool], clock_shift_days: int
) -> None:
    RetentionPolicy.objects.all().delete()
    policies.set_policy(owner, RecordType.CASE_FILES, keep_years * 365 + 2, "US-TX")
    policies.set_policy(owner, RecordType.MESSAGES, keep_years * 365 + 2)
    now = timezone.now()
    cases = [_closed_case(owner, closed=now - timedelta(days=365 * y)) for y in closed_years_ago]
    for case in cases:
        _message(case, "Please check the contacts on 36.")
    for case, hold in zip(cases, held, strict=False):
        if hold:
            policies.place_hold(owner, reason="property test hold", case=case)
    clock = now + timedelta(days=clock_shift_days)

    policies.enforce(owner.organization, clock)

    floor = timedelta(days=max(keep_years * 365 + 2, policies.floor_days(RecordType.CASE_FILES, "US-TX")))
    for case, hold in zip(cases, held + [False] * 4, strict=False):
        destroyed = any(f.destroyed_at is not None for f in _files(case))
        erased = case.messages.get().body == policies.ERASED_BY_POLICY
        assert erased == destroyed  # a case's messages go with its files, under the same rule
        if hold or case.completed_at + floor > clock:
            assert not destroyed
        else:
            assert destroyed
    DestructionCertificate.objects.all().delete()


def test_the_dicom_instances_indexed_from_a_case_go_with_its_files(
    owner: OrgAccess, django_capture_on_commit_callbacks: Any
) -> None:
    from casebridge.imaging.models import Instance
    from casebridge.imaging.synthetic import cbct_series
    from casebridge.imaging.tests.cases import zipped

    policies.set_policy(owner, RecordType.CASE_FILES, 6 * 365, "US-TX")
    case = draft_case(owner, patient_name="Patient with a CBCT")
    attach(owner, case, binary_stl(800), kind="scan", label="upper")
    with django_capture_on_commit_callbacks(execute=True):  # the ingest runs after the commit
        attach(owner, case, zipped({f"{i}.dcm": s for i, s in enumerate(cbct_series("ret", slices=3, size=8))}), "cbct")
    Case.objects.filter(pk=case.pk).update(status=Status.COMPLETED, completed_at=timezone.now() - 7 * YEAR)
    Patient.objects.filter(pk=case.patient_id).update(date_of_birth=date(1970, 1, 1))
    instances = list(Instance.objects.filter(series__study__case=case).select_related("stored_object"))
    assert len(instances) == 3

    certificate = policies.enforce(owner.organization)

    # The scan, the archive, its three slices and their series' metadata document.
    assert certificate is not None and certificate.items == 2 + 3 + 1
    assert all(StoredObject.objects.get(pk=i.stored_object_id).destroyed_at for i in instances)


def test_audit_segments_go_only_when_every_organization_lets_them_go(owner: OrgAccess) -> None:
    from casebridge.audit import archive, chain
    from casebridge.audit.api import record
    from casebridge.orgs.models import Organization

    for i in range(12):
        record("org.created", details={"n": i})
    chain.seal_pending()
    assert chain.checkpoint_now() is not None
    record("org.created", details={"n": "head"})
    chain.seal_pending()
    [segment] = archive.archive(now=timezone.now() + 400 * timedelta(days=1))
    now = timezone.now()
    policies.set_policy(owner, RecordType.AUDIT_EVENTS, 7 * 365)

    assert policies.audit_segments_due(now + 30 * YEAR) == (
        [],
        "an organization keeps its audit events for ever (the default)",
    )
    for organization in Organization.objects.exclude(pk=owner.organization.pk):
        RetentionPolicy.objects.create(
            organization=organization, record_type=RecordType.AUDIT_EVENTS, keep_days=policies.SIX_YEARS_DAYS
        )
    assert policies.audit_segments_due(now + 6.5 * YEAR) == (
        [],
        "no archive segment is old enough",
    )  # 7 years: the longest
    hold = policies.place_hold(owner, reason="Board inquiry 2033-2")
    assert policies.audit_segments_due(now + 8 * YEAR) == ([], "a legal hold is in force")
    policies.lift_hold(owner, hold, reason="Inquiry closed")
    assert policies.audit_segments_due(now + 8 * YEAR) == ([segment], "")

    certificates = policies.enforce_audit(now + 8 * YEAR)

    assert {c.organization_id for c in certificates} == set(Organization.objects.values_list("pk", flat=True))
    line = json.loads(certificates[0].body)["destroyed"][0]
    assert (line["kind"], line["range"], line["versions"][0]["sha256"]) == (
        "audit_segment",
        f"#1-#{segment.last_seq}",
        segment.content_sha256,
    )
    assert all(policies.verify_certificate(c) for c in certificates)
    assert render_certificate(certificates[0], signature_ok=True).startswith(b"%PDF")
    verified = chain.verify()
    assert verified.ok and verified.destroyed == segment.last_seq
    assert Event.objects.filter(action="audit.segment_destroyed").count() == 1
    assert policies.enforce_audit(now + 8 * YEAR) == []  # destroyed once


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_days=st.integers(min_value=30, max_value=800),
    ended_days_ago=st.lists(st.integers(min_value=-30, max_value=900), min_size=1, max_size=4),
    held=st.lists(st.booleans(), min_size=4, max_size=4),
    clock_shift_days=st.integers(min_value=-100, max_value=900),
)
def test_no_link_held_or_ended_more_recently_than_its_floor_and_policy_is_ever_removed(
    owner: OrgAccess, keep_days: int, ended_days_ago: list[int], held: list[bool], clock_shift_days: int
) -> None:
    import secrets

    from casebridge.sharing.models import ExternalLink

    RetentionPolicy.objects.all().delete()
    policies.set_policy(owner, RecordType.EXTERNAL_LINKS, keep_days)
    now = timezone.now()
    links = []
    for days, hold in zip(ended_days_ago, held, strict=False):
        case = draft_case(owner, patient_name=f"Patient {Case.objects.count() + 1}")
        links.append(
            ExternalLink.objects.create(
                case=case,
                recipient_email="second.opinion@example.org",
                expires_at=now - timedelta(days=days),
                max_downloads=3,
                token_digest=secrets.token_hex(32),
            )
        )
        if hold:
            policies.place_hold(owner, reason="property test hold", case=case)
    clock = now + timedelta(days=clock_shift_days)

    policies.enforce(owner.organization, clock)

    for link, hold in zip(links, held, strict=False):
        removed = not ExternalLink.objects.filter(pk=link.pk).exists()
        assert removed == (not hold and link.expires_at + timedelta(days=max(keep_days, 30)) <= clock)
    DestructionCertificate.objects.all().delete()
    ExternalLink.objects.all().delete()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_years=st.integers(min_value=6, max_value=10),
    closed_years_ago=st.lists(st.floats(min_value=-1, max_value=12), min_size=1, max_size=4),
    clock_shift_days=st.integers(min_value=-400, max_value=3000),
)
def test_no_compliance_record_is_removed_before_six_years_and_its_policy_out_of_effect(
    owner: OrgAccess, keep_years: int, closed_years_ago: list[float], clock_shift_days: int
) -> None:
    from casebridge.compliance.models import Incident

    RetentionPolicy.objects.all().delete()
    policies.set_policy(owner, RecordType.COMPLIANCE_RECORDS, keep_years * 365 + 2)
    now = timezone.now()
    incidents = [
        Incident.objects.create(
            organization=owner.organization,
            title="Property test",
            description="closed or still open",
            discovered_at=now - 13 * YEAR,
            closed_at=None if years < 0 else now - timedelta(days=365 * years),
        )
        for years in closed_years_ago
    ]
    clock = now + timedelta(days=clock_shift_days)

    policies.enforce(owner.organization, clock)

    keep = timedelta(days=max(keep_years * 365 + 2, policies.SIX_YEARS_DAYS))
    for incident in incidents:
        removed = not Incident.objects.filter(pk=incident.pk).exists()
        assert removed == (incident.closed_at is not None and incident.closed_at + keep <= clock)
    DestructionCertificate.objects.all().delete()
    Incident.objects.all().delete()


def test_the_worker_runs_enforcement_once_every_six_hours(owner: OrgAccess) -> None:
    from casebridge.retention.models import EnforcementRun

    policies.run_if_due()
    policies.run_if_due()  # the next tick, minutes later: the run is not due again
    assert EnforcementRun.objects.count() == 1 and EnforcementRun.objects.get().finished_at is not None


@pytest.mark.postgres_only
def test_two_workers_ticking_at_once_claim_one_run(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from django.db import connection

    from casebridge.retention.models import EnforcementRun

    start = threading.Barrier(4)
    create = EnforcementRun.objects.create

    def slow_create(**fields: Any) -> Any:
        time.sleep(0.3)  # every worker has read "no run yet" by now, unless the lock held them off
        return create(**fields)

    monkeypatch.setattr(EnforcementRun.objects, "create", slow_create)

    def tick() -> None:
        try:
            start.wait()
            policies.run_if_due()
        finally:
            connection.close()

    workers = [threading.Thread(target=tick) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert EnforcementRun.objects.count() == 1


def test_the_workers_run_counts_each_destroyed_segment_once(owner: OrgAccess) -> None:
    from casebridge.audit import archive, chain
    from casebridge.audit.api import record
    from casebridge.orgs.models import Organization

    for i in range(6):
        record("org.created", details={"n": i})
    chain.seal_pending()
    assert chain.checkpoint_now() is not None
    record("org.created", details={"n": "head"})
    chain.seal_pending()
    assert len(archive.archive(now=timezone.now() + 400 * timedelta(days=1))) == 1
    for organization in Organization.objects.all():
        RetentionPolicy.objects.create(
            organization=organization, record_type=RecordType.AUDIT_EVENTS, keep_days=policies.SIX_YEARS_DAYS
        )
    assert Organization.objects.count() > 1

    assert policies.enforce_all(timezone.now() + 8 * YEAR) == 1  # one segment, whatever the organizations
