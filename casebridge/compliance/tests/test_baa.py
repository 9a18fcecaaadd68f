"""The BAA generator: every provision of 45 CFR 164.504(e) with its citation, a checker that
refuses to finalize a document missing any (each one tried), signatures after re-authentication
only by whoever records agreements, and the second signature storing the signed PDF in the vault
and recording the connection's agreement (the BAA gate then follows it)."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import Forbidden, OrgAccess, resolve
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.compliance import baa
from casebridge.compliance.models import BaaDocument, BaaSignature
from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import AgreementBasis, Connection, ConnectionStatus
from casebridge.vault import api as vault

pytestmark = pytest.mark.django_db


def _access(user: User, org: object) -> OrgAccess:
    access = resolve(user, org)
    assert access is not None
    return access


@pytest.fixture
def connection(personas: Personas) -> Connection:
    return Connection.objects.create(
        requester=personas.lab, recipient=personas.practice, status=ConnectionStatus.ACTIVE
    )


def _final(personas: Personas, connection: Connection) -> BaaDocument:
    officer = _access(personas.members["compliance_officer"], personas.practice)
    doc = baa.draft(officer, connection)
    return baa.save(officer, doc, doc.sections, report_days=10, expires_on=None, finalize=True)


def _url(personas: Personas, name: str, doc: BaaDocument, org: object = None) -> str:
    return reverse(name, args=[(org or personas.practice).slug, doc.pk])


def test_the_draft_is_filled_from_both_organizations_with_every_provision_cited(
    personas: Personas, connection: Connection
) -> None:
    doc = baa.draft(_access(personas.members["compliance_officer"], personas.practice), connection)
    # The practice is the covered entity even when the lab asked for the connection.
    assert (doc.covered_entity, doc.business_associate) == (personas.practice, personas.lab)
    assert [p.key for p in baa.PROVISIONS] == [
        "permitted_uses",
        "no_other_use",
        "safeguards",
        "reporting",
        "subcontractors",
        "access",
        "amendment",
        "accounting",
        "hhs_books",
        "return_destroy",
        "termination",
    ]
    assert all(p.citation.startswith("45 CFR 164.504(e)") for p in baa.PROVISIONS)
    assert "164.314(a)" in baa.PROVISIONS_BY_KEY["safeguards"].citation
    assert "Precision Lab" in doc.sections["no_other_use"]
    assert "10 calendar days" in doc.sections["reporting"]
    assert baa.problems(doc.sections, doc.report_days) == {}
    assert Event.objects.filter(action="compliance.baa.drafted").count() == 1


@pytest.mark.parametrize("key", [p.key for p in baa.PROVISIONS])
@pytest.mark.parametrize("how", ["removed", "rewritten"])
def test_finalizing_without_a_required_provision_is_refused_naming_it(
    personas: Personas, connection: Connection, key: str, how: str
) -> None:
    officer = _access(personas.members["compliance_officer"], personas.practice)
    doc = baa.draft(officer, connection)
    sections = dict(doc.sections)
    sections[key] = "" if how == "removed" else "The parties will cooperate in good faith."
    with pytest.raises(ValidationError) as refused:
        baa.save(officer, doc, sections, report_days=10, expires_on=None, finalize=True)
    provision = baa.PROVISIONS_BY_KEY[key]
    assert list(refused.value.message_dict) == [key]
    message = refused.value.message_dict[key][0]
    assert provision.title in message and provision.citation in message and "Missing required provision" in message
    doc.refresh_from_db()
    assert doc.finalized_at is None and doc.sections[key] != sections[key]
    # The same text is kept as a draft: only finalizing needs every provision.
    baa.save(officer, doc, sections, report_days=10, expires_on=None, finalize=False)
    assert BaaDocument.objects.get(pk=doc.pk).finalized_at is None


def test_the_reporting_deadline_is_a_field_the_section_must_state(personas: Personas, connection: Connection) -> None:
    officer = _access(personas.members["compliance_officer"], personas.practice)
    doc = baa.draft(officer, connection)
    with pytest.raises(ValidationError, match="1 to 60"):
        baa.save(officer, doc, doc.sections, report_days=61, expires_on=None, finalize=False)
    with pytest.raises(ValidationError, match=r"contractual deadline \(5 days\)"):
        baa.save(officer, doc, doc.sections, report_days=5, expires_on=None, finalize=True)
    sections = {**doc.sections, "reporting": doc.sections["reporting"].replace("10 calendar", "5 calendar")}
    baa.save(officer, doc, sections, report_days=5, expires_on=None, finalize=True)
    assert BaaDocument.objects.get(pk=doc.pk).report_days == 5


def test_a_placeholder_keeps_the_document_from_being_final(personas: Personas, connection: Connection) -> None:
    officer = _access(personas.members["compliance_officer"], personas.practice)
    doc = baa.draft(officer, connection)
    sections = {**doc.sections, "termination": doc.sections["termination"] + " [[cure period]]"}
    with pytest.raises(ValidationError, match="replace every"):
        baa.save(officer, doc, sections, report_days=10, expires_on=None, finalize=True)


def test_finalizing_an_incomplete_document_over_the_page_changes_nothing(
    personas: Personas, connection: Connection
) -> None:
    doc = baa.draft(_access(personas.members["compliance_officer"], personas.practice), connection)
    posted = {**doc.sections, "report_days": "10", "operation": "finalize", "accounting": ""}
    response = signed_in_client(personas.members["compliance_officer"]).post(_url(personas, "baa_detail", doc), posted)
    assert response.status_code == 400
    assert "Accounting of disclosures" in response.content.decode()
    after = BaaDocument.objects.get(pk=doc.pk)
    assert after.finalized_at is None and after.sections == doc.sections
    assert not Event.objects.filter(action__in=["compliance.baa.finalized", "compliance.baa.saved"]).exists()


def test_a_final_document_is_not_edited(personas: Personas, connection: Connection) -> None:
    doc = _final(personas, connection)
    with pytest.raises(ValidationError, match="final"):
        baa.save(
            _access(personas.members["compliance_officer"], personas.practice),
            doc,
            doc.sections,
            report_days=10,
            expires_on=None,
            finalize=False,
        )


def test_both_signatures_store_the_signed_pdf_and_record_the_connections_baa(
    personas: Personas, connection: Connection
) -> None:
    doc = _final(personas, connection)
    officer_view = signed_in_client(personas.members["compliance_officer"]).get(_url(personas, "baa_detail", doc))
    assert "Sign for" not in officer_view.content.decode()  # a compliance officer does not sign
    owner = signed_in_client(personas.members["owner"])
    assert owner.get(_url(personas, "baa_sign", doc)).status_code == 200
    response = owner.post(_url(personas, "baa_sign", doc), {"name": "Dana Smile", "title": "Owner"})
    assert response.status_code == 302
    assert not Connection.objects.get(pk=connection.pk).can_carry_phi  # one signature is not an agreement
    assert BaaDocument.objects.get(pk=doc.pk).signed_pdf is None

    lab = signed_in_client(personas.lab_manager)
    assert (
        lab.post(_url(personas, "baa_sign", doc, personas.lab), {"name": "Lee Lab", "title": "Manager"}).status_code
        == 302
    )

    doc.refresh_from_db()
    assert doc.signed_pdf is not None and doc.signed_at is not None
    stored = b"".join(bytes(c) for c in vault.read_version(vault.get_version(doc.signed_pdf)))
    assert stored.startswith(b"%PDF")
    connection.refresh_from_db()
    assert connection.basis == AgreementBasis.BAA and connection.baa_signed_on == timezone.localdate()
    assert connection.can_carry_phi
    signed = Event.objects.filter(action="compliance.baa.signed").order_by("id")
    assert [(e.details["party"], e.details["signer"], e.details["signer_title"]) for e in signed] == [
        ("covered_entity", "Dana Smile", "Owner"),
        ("business_associate", "Lee Lab", "Manager"),
    ]
    assert all(e.details["signed_at"] for e in signed)
    assert Event.objects.filter(action="org.connection.changed", target_id=str(connection.pk)).exists()
    assert Event.objects.filter(action="compliance.baa.completed").count() == 1
    # The connection links to the signed agreement, on both sides.
    page = lab.get(reverse("connections", args=[personas.lab.slug])).content.decode()
    assert reverse("baa_detail", args=[personas.lab.slug, doc.pk]) in page
    # The download is now the signed copy from the vault, audited.
    download = lab.get(reverse("baa_file", args=[personas.lab.slug, doc.pk, "pdf"]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content if download.streaming else [download.content]).startswith(b"%PDF")
    assert Event.objects.filter(action="compliance.baa.downloaded", details__format="signed pdf").exists()


def test_the_agreements_end_date_becomes_the_connections(personas: Personas, connection: Connection) -> None:
    officer = _access(personas.members["compliance_officer"], personas.practice)
    doc = baa.draft(officer, connection)
    ends = timezone.localdate() + timedelta(days=730)
    baa.save(officer, doc, doc.sections, report_days=10, expires_on=ends, finalize=True)
    baa.sign(_access(personas.members["owner"], personas.practice), doc, name="Dana", title="Owner")
    baa.sign(_access(personas.lab_manager, personas.lab), doc, name="Lee", title="Manager")
    assert Connection.objects.get(pk=connection.pk).baa_expires_on == ends


def test_signing_without_reauthentication_is_refused(personas: Personas, connection: Connection) -> None:
    doc = _final(personas, connection)
    client = signed_in_client(personas.members["owner"], reauthenticated=False)
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 600  # signed in ten minutes ago, identity not confirmed since
    session.save()
    assert "/reauthenticate/" in client.get(_url(personas, "baa_sign", doc))["Location"]
    response = client.post(_url(personas, "baa_sign", doc), {"name": "Dana Smile", "title": "Owner"})
    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    assert not BaaSignature.objects.exists()
    assert not Event.objects.filter(action="compliance.baa.signed").exists()


def test_the_wrong_role_neither_signs_nor_drafts(personas: Personas, connection: Connection) -> None:
    doc = _final(personas, connection)
    officer = signed_in_client(personas.members["compliance_officer"])
    assert officer.post(_url(personas, "baa_sign", doc), {"name": "C", "title": "Officer"}).status_code == 403
    with pytest.raises(Forbidden):
        baa.sign(_access(personas.members["compliance_officer"], personas.practice), doc, name="C", title="O")
    clinician = signed_in_client(personas.members["clinician"])
    response = clinician.post(reverse("baa_list", args=[personas.practice.slug]), {"connection": str(connection.pk)})
    assert response.status_code == 403
    manager = signed_in_client(personas.lab_manager)  # signs agreements, does not draft them
    response = manager.post(reverse("baa_list", args=[personas.lab.slug]), {"connection": str(connection.pk)})
    assert response.status_code == 403
    detail = manager.post(_url(personas, "baa_detail", doc, personas.lab), {**doc.sections, "report_days": "10"})
    assert detail.status_code == 403
    assert BaaDocument.objects.count() == 1 and not BaaSignature.objects.exists()
    unfinished = baa.draft(_access(personas.members["compliance_officer"], personas.practice), connection)
    with pytest.raises(ValidationError, match="finalize it first"):
        baa.sign(_access(personas.members["owner"], personas.practice), unfinished, name="D", title="Owner")


def test_another_organization_sees_nothing(personas: Personas, connection: Connection) -> None:
    doc = _final(personas, connection)
    outsider = signed_in_client(personas.outsider)
    other = personas.other_practice
    for url in (
        _url(personas, "baa_detail", doc, other),
        _url(personas, "baa_sign", doc, other),
        reverse("baa_file", args=[other.slug, doc.pk, "pdf"]),
        reverse("baa_file", args=[other.slug, doc.pk, "docx"]),
    ):
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(_url(personas, "baa_sign", doc, other), {"name": "X", "title": "Owner"}).status_code == 404
    assert outsider.post(reverse("baa_list", args=[other.slug]), {"connection": str(connection.pk)}).status_code == 404
    assert BaaDocument.objects.count() == 1 and not BaaSignature.objects.exists()
    with pytest.raises(ValidationError):
        baa.draft(_access(personas.outsider, other), connection)


def test_the_pdf_and_word_copies_carry_every_provision(personas: Personas, connection: Connection) -> None:
    from docx import Document

    doc = _final(personas, connection)
    client = signed_in_client(personas.members["compliance_officer"])
    pdf = client.get(reverse("baa_file", args=[personas.practice.slug, doc.pk, "pdf"]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    word = client.get(reverse("baa_file", args=[personas.practice.slug, doc.pk, "docx"]))
    assert word.status_code == 200
    text = "\n".join(p.text for p in Document(io.BytesIO(word.content)).paragraphs)
    for provision in baa.PROVISIONS:
        assert provision.title in text and provision.citation in text
    assert "Smile Dental" in text and "not signed yet" in text
    assert client.get(reverse("baa_file", args=[personas.practice.slug, doc.pk, "txt"])).status_code == 404
    assert Event.objects.filter(action="compliance.baa.downloaded").count() == 2


def test_the_list_page_drafts_for_a_connection(personas: Personas, connection: Connection) -> None:
    client = signed_in_client(personas.members["compliance_officer"])
    vendors_page = client.get(reverse("vendors", args=[personas.practice.slug])).content.decode()
    assert reverse("baa_list", args=[personas.practice.slug]) in vendors_page
    page = client.get(reverse("baa_list", args=[personas.practice.slug]))
    assert page.status_code == 200 and "Precision Lab" in page.content.decode()
    response = client.post(reverse("baa_list", args=[personas.practice.slug]), {"connection": str(connection.pk)})
    doc = BaaDocument.objects.get()
    assert response["Location"] == _url(personas, "baa_detail", doc)
    assert "164.504(e)(2)(ii)(I)" in client.get(response["Location"]).content.decode()


def test_an_ended_connection_gets_no_agreement(personas: Personas, connection: Connection) -> None:
    org_actions.end_connection(_access(personas.members["owner"], personas.practice), connection)
    with pytest.raises(ValidationError, match="ended"):
        baa.draft(_access(personas.members["compliance_officer"], personas.practice), connection)


def test_an_agreement_with_a_vendor_is_signed_here_and_countersigned_outside(personas: Personas) -> None:
    from casebridge.compliance.models import BaaStatus, Vendor

    vendor = Vendor.objects.create(organization=personas.practice, name="CloudStore")
    client = signed_in_client(personas.members["compliance_officer"])
    response = client.post(reverse("baa_list", args=[personas.practice.slug]), {"vendor": str(vendor.pk)})
    doc = BaaDocument.objects.get(vendor=vendor)
    assert response["Location"] == _url(personas, "baa_detail", doc)
    assert (doc.covered_entity, doc.business_associate, doc.business_associate_name) == (
        personas.practice,
        None,
        "CloudStore",
    )
    assert "CloudStore" in doc.sections["subcontractors"]
    officer = _access(personas.members["compliance_officer"], personas.practice)
    sections = {**doc.sections, "hhs_books": ""}
    with pytest.raises(ValidationError, match="Books and records available to HHS"):
        baa.save(officer, doc, sections, report_days=10, expires_on=None, finalize=True)
    baa.save(officer, doc, doc.sections, report_days=10, expires_on=None, finalize=True)
    owner = signed_in_client(personas.members["owner"])
    assert owner.post(_url(personas, "baa_sign", doc), {"name": "Dana Smile", "title": "Owner"}).status_code == 302
    vendor.refresh_from_db()
    doc.refresh_from_db()
    # Kept in the vault and on the vendor; requested until the vendor's countersigned copy comes.
    assert vendor.baa_document_id == doc.signed_pdf_id is not None
    assert vendor.baa_status == BaaStatus.REQUESTED and doc.signed_at is None
    page = owner.get(_url(personas, "baa_detail", doc)).content.decode()
    assert "signs outside CaseBridge" in page and "Sign for" not in page
    assert owner.get(reverse("vendor_baa_document", args=[personas.practice.slug, vendor.pk])).status_code == 200
    # Another organization cannot draft for this vendor.
    outsider = signed_in_client(personas.outsider)
    outside = outsider.post(reverse("baa_list", args=[personas.other_practice.slug]), {"vendor": str(vendor.pk)})
    assert outside.status_code == 404 and BaaDocument.objects.count() == 1
