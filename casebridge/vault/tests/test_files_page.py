"""The Files page, an organization's inbox of uploads.

Who sees what: a person sees their own uploads on no case yet and every file of the organization
on a case they may see; owners and administrators also see (never read) colleagues' uploads on no
case, which they may delete. Another organization sees nothing (404). Files are named by type and
upload time (the uploaded names never reach the server), or by their case's name once attached,
with size, uploader, malware check and the case they are used in. Attaching goes through the
case page's attach (same checks, audit event, DICOM indexing); deleting through the API's
destruction, only for a file no case uses. Constant queries whatever the number of files."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from casebridge.access.policy import OrgAccess, resolve
from casebridge.accounts.middleware import SESSION_AUTH_AT
from casebridge.accounts.models import ServiceAccount, User
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.models import Attachment, Case, Status
from casebridge.core.testing import Personas, signed_in_client
from casebridge.imaging.models import IngestJob, Instance
from casebridge.imaging.synthetic import cbct_series
from casebridge.imaging.tests.cases import clinician_access, connect_lab, draft_case, stored
from casebridge.orgs.models import Organization
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.queries import PAGE
from casebridge.vault.tests.conftest import Clamd
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db

STL_NAME = re.compile(r"STL scan uploaded \d{4}-\d\d-\d\d \d\d:\d\d")


def stored_file(org: Organization, user: User | None, size: int = 2048, **fields: Any) -> StoredObject:
    """Rows only, for what the list shows without ever opening the ciphertext."""
    stored = StoredObject.objects.create(
        organization=org,
        created_by=user,
        file_type="stl",
        mime_type="model/stl",
        extension="stl",
        current_version=1,
        **fields,
    )
    ObjectVersion.objects.create(
        stored_object=stored,
        version=1,
        size=size,
        ciphertext_size=size + 100,
        sha256="0" * 64,
        blob_name=f"objects/{stored.pk}/v1",
        org_key_version=1,
        wrapped_dek=b"k",
        created_by=user,
    )
    return stored


def files_url(org: Organization, query: str = "") -> str:
    return reverse("files", args=[org.slug]) + query


def attach_url(org: Organization, stored: StoredObject) -> str:
    return reverse("file_attach", args=[org.slug, stored.pk])


def delete_url(org: Organization, stored: StoredObject) -> str:
    return reverse("file_destroy", args=[org.slug, stored.pk])


def row_of(html: str, stored: StoredObject) -> str:
    """The table row of one file (empty when the file is not listed)."""
    found = re.search(rf'<tr id="file-{stored.pk}">(.*?)</tr>', html, re.S)
    return found.group(1) if found else ""


# --- what is listed ----------------------------------------------------------------------------
def test_a_member_sees_their_own_uploads_named_by_type_and_time_and_not_a_colleagues(personas: Personas) -> None:
    staff, clinician = personas.members["staff"], personas.members["clinician"]
    mine = stored_file(personas.practice, staff, size=3 * 1024 * 1024)
    theirs = stored_file(personas.practice, clinician)
    elsewhere = stored_file(personas.other_practice, personas.outsider)

    response = signed_in_client(staff).get(files_url(personas.practice))

    assert response.status_code == 200
    html = response.content.decode()
    row = row_of(html, mine)
    assert STL_NAME.search(row) and f"STL scan uploaded {mine.created_at:%Y-%m-%d %H:%M}" in row
    assert "3.0\xa0MB" in row and "by you" in row and "not on a case" in row
    assert reverse("file_content", args=[mine.pk]) in row  # their own: they may download it
    assert attach_url(personas.practice, mine) in row and delete_url(personas.practice, mine) in row
    assert mine.neutral_name() not in html  # no more file_0a1b2c3d.stl
    assert row_of(html, theirs) == "" and str(theirs.pk) not in html
    assert row_of(html, elsewhere) == "" and str(elsewhere.pk) not in html
    # What the uploader script needs, none of it inline.
    assert 'data-endpoint="/api/v1/uploads/"' in html
    assert f'data-organization="{personas.practice.slug}"' in html
    assert "<script>" not in html


def test_an_owner_sees_colleagues_uploads_on_no_case_to_delete_them_but_not_to_read_or_attach(
    personas: Personas,
) -> None:
    clinician = personas.members["clinician"]
    clinician.full_name = "Dr. Clara Smile"
    clinician.save(update_fields=["full_name"])
    forgotten = stored_file(personas.practice, clinician)
    scanner = ServiceAccount.objects.create(organization=personas.practice, name="Intraoral scanner", role="staff")
    pushed = stored_file(personas.practice, None, created_by_service=scanner)

    html = signed_in_client(personas.members["owner"]).get(files_url(personas.practice)).content.decode()

    row = row_of(html, forgotten)
    assert "by Dr. Clara Smile" in row
    assert delete_url(personas.practice, forgotten) in row
    assert attach_url(personas.practice, forgotten) not in row  # the case page would not take it either
    assert reverse("file_content", args=[forgotten.pk]) not in row  # that it exists, not what it holds
    assert "only they can attach it" in row
    assert "by Intraoral scanner (service account)" in row_of(html, pushed)


def test_a_file_on_a_case_is_named_as_on_the_case_and_says_where_it_is_used(
    personas: Personas, vault_home: Path
) -> None:
    staff = clinician_access(personas, "staff")
    case = draft_case(clinician_access(personas), patient_name="Rosa Carter")
    scan = stored(staff, binary_stl(1200))
    actions.attach_file(staff, case, scan, kind="scan", label="upper")
    colleague = clinician_access(personas)
    photo_of_colleague = stored(colleague, binary_stl(900))
    actions.attach_file(colleague, case, photo_of_colleague, kind="scan", label="lower")

    html = signed_in_client(personas.members["staff"]).get(files_url(personas.practice)).content.decode()

    row = row_of(html, scan)
    assert f"{case.number}_upper_1.stl" in row
    assert f'href="{reverse("case_detail", args=[personas.practice.slug, case.number])}"' in row
    assert f">{case.number}</a>" in row
    assert f"Kept with {case.number}" in row and "files of a case are not deleted here" in row
    assert delete_url(personas.practice, scan) not in row and attach_url(personas.practice, scan) not in row
    # A colleague's file of a case the person sees: the organization's, listed with its uploader.
    assert f"{case.number}_lower_1.stl" in row_of(html, photo_of_colleague)
    assert "Rosa Carter" not in html  # case numbers only: no patient data on the list


def test_parts_of_a_study_are_not_listed_as_uploads(personas: Personas) -> None:
    staff = personas.members["staff"]
    part = stored_file(personas.practice, staff, attached_at=timezone.now())  # an instance out of an archive
    html = signed_in_client(staff).get(files_url(personas.practice)).content.decode()
    assert row_of(html, part) == ""


def test_the_empty_list_says_how_files_get_here(personas: Personas) -> None:
    html = signed_in_client(personas.members["staff"]).get(files_url(personas.practice)).content.decode()
    assert "No files yet." in html
    assert "uploaded on this page" in html and "STOW-RS" in html and "not accepted yet" in html


def test_the_waiting_filter_and_pages(personas: Personas, vault_home: Path) -> None:
    staff_user = personas.members["staff"]
    staff = clinician_access(personas, "staff")
    case = draft_case(clinician_access(personas))
    on_case = stored(staff, binary_stl(900))
    actions.attach_file(staff, case, on_case, kind="scan")
    waiting = [stored_file(personas.practice, staff_user) for _ in range(PAGE)]
    client = signed_in_client(staff_user)

    first = client.get(files_url(personas.practice, "?show=waiting")).content.decode()
    assert f"Not on a case yet ({PAGE})" in first
    assert row_of(first, on_case) == ""
    assert all(row_of(first, w) for w in waiting)
    assert "Older files" not in first

    everything = client.get(files_url(personas.practice)).content.decode()
    assert row_of(everything, on_case) == ""  # the oldest of PAGE + 1: on the next page
    cursor = re.search(r'href="([^"]*before=[^"]+)"', everything)
    assert cursor is not None
    second = client.get(cursor.group(1).replace("&amp;", "&")).content.decode()
    assert row_of(second, on_case) and not any(row_of(second, w) for w in waiting)
    assert "Back to the newest" in second

    assert client.get(files_url(personas.practice, "?before=not-a-cursor")).status_code == 400
    theirs = stored_file(personas.other_practice, personas.outsider)
    assert client.get(files_url(personas.practice, f"?before={theirs.pk}")).status_code == 404


def test_the_list_costs_the_same_queries_however_many_files(
    personas: Personas, vault_home: Path, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    staff_user = personas.members["staff"]
    staff = clinician_access(personas, "staff")
    client = signed_in_client(staff_user)
    url = reverse("files_recent", args=[personas.practice.slug])

    def add_files() -> None:
        case = draft_case(clinician_access(personas))
        for label in ("upper", "lower"):
            actions.attach_file(staff, case, stored(staff, binary_stl(900)), kind="scan", label=label)
        stored_file(personas.practice, staff_user)
        stored_file(personas.practice, personas.members["clinician"])  # not shown to staff

    add_files()
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as baseline:
        client.get(url)
    for _ in range(3):
        add_files()
    with django_assert_num_queries(len(baseline.captured_queries)):
        response = client.get(url)
    assert response.content.decode().count('<tr id="file-') == 4 * 3


def test_the_malware_check_of_each_file_is_shown(
    personas: Personas, vault_home: Path, clamd: Clamd, settings: Any
) -> None:
    staff = clinician_access(personas, "staff")
    unscanned = stored(staff, binary_stl(700))  # no scanner configured yet
    settings.VAULT_CLAMD = clamd.unix_url
    scanned = stored(staff, binary_stl(800))
    version = ObjectVersion.objects.get(stored_object=scanned)
    assert version.scanned_at is not None
    assert ObjectVersion.objects.get(stored_object=unscanned).scanned_at is None
    client = signed_in_client(personas.members["staff"])

    html = client.get(files_url(personas.practice)).content.decode()
    assert "checked" in row_of(html, scanned) and "clean on <time" in row_of(html, scanned)
    assert "no check on record" in row_of(html, unscanned)  # a scanner now, none when it came

    settings.VAULT_CLAMD = ""
    html = client.get(files_url(personas.practice)).content.decode()
    assert "not scanned" in row_of(html, unscanned) and "no malware scanner is set up" in row_of(html, unscanned)


def test_members_without_the_upload_permission_get_no_files_link_nor_page(personas: Personas) -> None:
    auditor = signed_in_client(personas.members["auditor"])
    home = auditor.get(reverse("org_home", args=[personas.practice.slug])).content.decode()
    assert files_url(personas.practice) not in home
    assert auditor.get(files_url(personas.practice)).status_code == 403
    staff = signed_in_client(personas.members["staff"])
    home = staff.get(reverse("org_home", args=[personas.practice.slug])).content.decode()
    assert files_url(personas.practice) in home


def test_another_organization_gets_404_for_the_page_and_every_file(personas: Personas) -> None:
    upload = stored_file(personas.practice, personas.members["staff"])
    outsider = signed_in_client(personas.outsider)
    assert outsider.get(files_url(personas.practice)).status_code == 404
    for slug in (personas.practice.slug, personas.other_practice.slug):
        for name in ("file_attach", "file_destroy"):
            url = reverse(name, args=[slug, upload.pk])
            assert outsider.get(url).status_code == 404
            assert outsider.post(url, {"case": "CB-1", "kind": "scan", "reason": "Not mine at all"}).status_code == 404
    upload.refresh_from_db()
    assert upload.destroyed_at is None and upload.attached_at is None


# --- attaching -----------------------------------------------------------------------------
@pytest.fixture
def inbox(personas: Personas, vault_home: Path) -> tuple[OrgAccess, StoredObject, Case]:
    """A draft case of the practice and a real upload (encrypted in the vault) of its staff member."""
    staff = clinician_access(personas, "staff")
    case = draft_case(clinician_access(personas), patient_name="Rosa Carter")
    return staff, stored(staff, binary_stl(1200)), case


def test_the_attach_page_offers_the_cases_the_person_may_add_files_to_and_records_the_patients_shown(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    staff, upload, case = inbox
    sent = draft_case(clinician_access(personas), patient_name="Sam Sent")
    Case.objects.filter(pk=sent.pk).update(status=Status.SUBMITTED)  # with the lab: no more files from the practice
    theirs = draft_case(clinician_access_of(personas.outsider, personas.other_practice), patient_name="Olga Other")

    response = signed_in_client(personas.members["staff"]).get(attach_url(personas.practice, upload))

    html = response.content.decode()
    assert response.status_code == 200
    assert f"{case.number} · Rosa Carter" in html
    assert sent.number not in html and theirs.number not in html
    assert ">Design for approval</option>" not in html and ">Scan</option>" in html  # designs come from the lab
    event = Event.objects.get(action="patient.viewed", details__via="web.files.attach")
    assert event.details["cases"] == [case.number] and event.actor_id == str(staff.actor.pk)


def clinician_access_of(user: User, org: Organization) -> OrgAccess:
    access = resolve(user, org)
    assert access is not None
    return access


def test_attaching_puts_the_upload_on_the_case_through_the_case_rules_with_its_audit_event(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    staff, upload, case = inbox
    client = signed_in_client(personas.members["staff"])

    done = client.post(attach_url(personas.practice, upload), {"case": case.number, "kind": "scan", "label": "upper"})

    assert done.status_code == 302 and done["Location"] == files_url(personas.practice)
    attachment = Attachment.objects.get(stored_object=upload)
    assert (attachment.case, attachment.kind, attachment.label) == (case, "scan", "upper")
    assert attachment.added_by == personas.members["staff"] and attachment.added_by_org == personas.practice
    upload.refresh_from_db()
    assert upload.attached_at is not None
    event = Event.objects.get(action="case.attachment.added")
    assert event.target_id == str(case.pk) and event.patient_ref == str(case.patient_id)
    assert event.details["file"] == str(upload.pk) and event.actor_id == str(staff.actor.pk)
    # The case page lists it under the case's name, and the Files page says where it went.
    page = client.get(files_url(personas.practice)).content.decode()
    assert f"Attached to {case.number} as {case.number}_upper_1.stl." in page
    assert f"{case.number}_upper_1.stl" in row_of(page, upload)
    case_page = client.get(reverse("case_detail", args=[personas.practice.slug, case.number])).content.decode()
    assert f"{case.number}_upper_1.stl" in case_page


def test_attaching_dicom_starts_the_study_indexing_as_on_the_case_page(
    personas: Personas, vault_home: Path, django_capture_on_commit_callbacks: Any
) -> None:
    staff = clinician_access(personas, "staff")
    case = draft_case(clinician_access(personas))
    dicom = stored(staff, cbct_series("pano", slices=1, size=16)[0])
    client = signed_in_client(personas.members["staff"])

    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(attach_url(personas.practice, dicom), {"case": case.number, "kind": "cbct"})

    assert done.status_code == 302
    job = IngestJob.objects.get(source=dicom)
    assert job.case == case and job.state == "done" and job.imported == 1
    assert Instance.objects.filter(series__study__case=case, stored_object=dicom).exists()
    assert Event.objects.filter(action="imaging.ingest_queued", target_id=str(dicom.pk)).exists()
    row = row_of(client.get(files_url(personas.practice)).content.decode(), dicom)
    assert f"{case.number}_cbct_1.dcm" in row and "Study indexing: done" in row


def test_a_case_the_person_may_not_add_files_to_is_refused_and_nothing_is_attached(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    _staff, upload, case = inbox
    client = signed_in_client(personas.members["staff"])
    theirs = draft_case(clinician_access_of(personas.outsider, personas.other_practice))
    for number in ("CB-1999-000001", theirs.number):
        refused = client.post(attach_url(personas.practice, upload), {"case": number, "kind": "scan"})
        assert refused.status_code == 400
        assert "Choose one of the cases listed" in refused.content.decode()

    # Offered when the page was drawn, sent to the lab before the form came back: the case's rule says no.
    connect_lab(personas)
    Case.objects.filter(pk=case.pk).update(status=Status.SUBMITTED, lab=personas.lab)
    late = client.post(attach_url(personas.practice, upload), {"case": case.number, "kind": "scan"})
    assert late.status_code == 400  # no longer offered

    Case.objects.filter(pk=case.pk).update(status=Status.DRAFT)
    design = client.post(attach_url(personas.practice, upload), {"case": case.number, "kind": "design"})
    assert design.status_code == 400 and "Choose what kind of file this is." in design.content.decode()
    upload.refresh_from_db()
    assert upload.attached_at is None and not Attachment.objects.exists()
    assert not Event.objects.filter(action="case.attachment.added").exists()


def test_the_cases_own_refusal_is_shown_when_the_case_changed_after_the_check(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form offers the case; `attach_file` re-decides under its lock and its answer is shown."""
    _staff, upload, case = inbox
    real = actions.attach_file

    def sent_meanwhile(access: OrgAccess, case: Case, *args: Any, **kwargs: Any) -> Attachment:
        Case.objects.filter(pk=case.pk).update(status=Status.SUBMITTED)
        case.status = Status.SUBMITTED
        return real(access, case, *args, **kwargs)

    monkeypatch.setattr(actions, "attach_file", sent_meanwhile)
    response = signed_in_client(personas.members["staff"]).post(
        attach_url(personas.practice, upload), {"case": case.number, "kind": "scan"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "already sent to the lab" in html and "Nothing was attached." in html
    upload.refresh_from_db()
    assert upload.attached_at is None


def test_only_the_uploader_attaches_an_upload_and_an_attached_file_stays_where_it_is(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    _staff, upload, case = inbox
    body = {"case": case.number, "kind": "scan"}
    for role in ("clinician", "owner"):  # same practice, not the uploader: the case page refuses them too
        colleague = signed_in_client(personas.members[role])
        assert colleague.get(attach_url(personas.practice, upload)).status_code == 404
        assert colleague.post(attach_url(personas.practice, upload), body).status_code == 404
    client = signed_in_client(personas.members["staff"])
    assert client.post(attach_url(personas.practice, upload), body).status_code == 302
    other_case = draft_case(clinician_access(personas))
    again = client.post(attach_url(personas.practice, upload), {**body, "case": other_case.number}, follow=True)
    assert f"It is already part of {case.number}." in again.content.decode()
    assert Attachment.objects.get(stored_object=upload).case == case


def test_a_lab_attaches_its_upload_to_a_case_it_works_on_until_the_practice_revokes_it(
    personas: Personas, vault_home: Path
) -> None:
    connect_lab(personas)
    practice = clinician_access(personas)
    case = draft_case(practice, lab=personas.lab)
    actions.attach_file(practice, case, stored(practice, binary_stl(1000)), kind="scan")
    Case.objects.filter(pk=case.pk).update(status=Status.RECEIVED)
    lab = clinician_access_of(personas.lab_manager, personas.lab)
    designs = [stored(lab, binary_stl(1100)) for _ in range(2)]
    client = signed_in_client(personas.lab_manager)

    page = client.get(attach_url(personas.lab, designs[0])).content.decode()
    assert case.number in page and ">Design for approval</option>" in page and ">Scan</option>" not in page
    done = client.post(attach_url(personas.lab, designs[0]), {"case": case.number, "kind": "design"}, follow=True)
    assert f"Attached to {case.number} as {case.number}_design_1.stl." in done.content.decode()
    attachment = Attachment.objects.get(stored_object=designs[0])
    assert attachment.kind == "design" and attachment.added_by_org == personas.lab

    actions.revoke_lab_access(practice, Case.objects.get(pk=case.pk))
    refused = client.post(attach_url(personas.lab, designs[1]), {"case": case.number, "kind": "design"})
    assert refused.status_code == 400 and case.number not in refused.content.decode()
    assert not Attachment.objects.filter(stored_object=designs[1]).exists()


# --- deleting ------------------------------------------------------------------------------
def test_an_unused_upload_is_deleted_after_confirming_with_a_reason(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    staff, upload, _case = inbox
    client = signed_in_client(personas.members["staff"])
    url = delete_url(personas.practice, upload)

    confirm = client.get(url).content.decode()
    assert "Delete this file?" in confirm and "cannot be undone" in confirm and "Delete for good" in confirm
    upload.refresh_from_db()
    assert upload.destroyed_at is None  # looking changes nothing

    too_short = client.post(url, {"reason": "x"})
    assert too_short.status_code == 400 and "Give a reason of a few words" in too_short.content.decode()
    upload.refresh_from_db()
    assert upload.destroyed_at is None

    done = client.post(url, {"reason": "Uploaded twice"}, follow=True)
    assert "its key is destroyed" in done.content.decode()
    upload.refresh_from_db()
    assert upload.destroyed_at is not None
    assert not ObjectVersion.objects.filter(stored_object=upload, wrapped_dek__isnull=False).exists()
    event = Event.objects.get(action="file.destroyed", target_id=str(upload.pk))
    assert event.details["reason"] == "Uploaded twice" and event.actor_id == str(staff.actor.pk)
    assert row_of(done.content.decode(), upload) == ""
    assert client.post(url, {"reason": "Uploaded twice"}).status_code == 404  # gone


def test_deleting_asks_whoever_signed_in_a_while_ago_to_confirm_their_identity_first(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    _staff, upload, _case = inbox
    client = signed_in_client(personas.members["staff"], reauthenticated=False)
    session = client.session
    session[SESSION_AUTH_AT] = time.time() - 600  # signed in ten minutes ago, identity not confirmed since
    session.save()
    url = delete_url(personas.practice, upload)

    assert "Delete this file?" in client.get(url).content.decode()  # looking needs nothing more
    response = client.post(url, {"reason": "Uploaded twice"})

    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    upload.refresh_from_db()
    assert upload.destroyed_at is None
    assert not Event.objects.filter(action="file.destroyed").exists()


def test_an_owner_deletes_a_colleagues_forgotten_upload_but_a_colleague_cannot(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    _staff, upload, _case = inbox
    url = delete_url(personas.practice, upload)
    clinician = signed_in_client(personas.members["clinician"])
    assert clinician.get(url).status_code == 404
    assert clinician.post(url, {"reason": "Not mine to keep"}).status_code == 404
    upload.refresh_from_db()
    assert upload.destroyed_at is None

    owner = signed_in_client(personas.members["owner"])
    assert owner.post(url, {"reason": "Left by a former employee"}).status_code == 302
    upload.refresh_from_db()
    assert upload.destroyed_at is not None
    assert Event.objects.get(action="file.destroyed").actor_id == str(personas.members["owner"].pk)


def test_a_file_on_a_case_is_not_deleted_here_even_by_an_owner_and_the_page_says_where_it_is_used(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    staff, upload, case = inbox
    actions.attach_file(staff, case, upload, kind="scan")
    for role in ("staff", "owner"):
        client = signed_in_client(personas.members[role])
        url = delete_url(personas.practice, upload)
        page = client.get(url).content.decode()
        assert "cannot be deleted here" in page and "record of case" in page
        assert reverse("case_detail", args=[personas.practice.slug, case.number]) in page
        assert "Delete for good" not in page
        refused = client.post(url, {"reason": "Wrong patient, sorry"})
        assert refused.status_code == 409 and "cannot be deleted here" in refused.content.decode()
    upload.refresh_from_db()
    assert upload.destroyed_at is None
    assert not Event.objects.filter(action="file.destroyed").exists()


def test_a_legal_hold_stops_the_deletion_and_says_so(
    personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]
) -> None:
    from casebridge.retention.policies import place_hold

    _staff, upload, _case = inbox
    place_hold(clinician_access(personas, "owner"), reason="Litigation request 2026-14")
    response = signed_in_client(personas.members["staff"]).post(
        delete_url(personas.practice, upload), {"reason": "Uploaded twice"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "under a legal hold" in html and "Nothing was deleted." in html
    upload.refresh_from_db()
    assert upload.destroyed_at is None


def test_the_pages_refuse_api_tokens(personas: Personas, inbox: tuple[OrgAccess, StoredObject, Case]) -> None:
    from casebridge.accounts.actions import create_api_token

    _staff, upload, case = inbox
    staff = personas.members["staff"]
    _token, raw = create_api_token(
        organization=personas.practice, name="t", scopes=["cases:read", "cases:write"], days=1, actor=staff, user=staff
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.post(attach_url(personas.practice, upload), {"case": case.number, "kind": "scan"}).status_code == 403
    assert client.post(delete_url(personas.practice, upload), {"reason": "Uploaded twice"}).status_code == 403
    upload.refresh_from_db()
    assert upload.attached_at is None and upload.destroyed_at is None
