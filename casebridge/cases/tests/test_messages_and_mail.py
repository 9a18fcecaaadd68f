"""The case conversation (files referred to, read state), per-person e-mail preferences, e-mails
without PHI, and downloads of case files audited with the patient reference."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from casebridge.access.policy import case_for
from casebridge.audit.models import Event
from casebridge.cases import actions
from casebridge.cases.actions import ItemInput
from casebridge.cases.models import Case, Status
from casebridge.cases.tests import test_workflow
from casebridge.cases.tests.test_workflow import _access, _file, _lab, _ready_crown
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db
world = test_workflow.world  # the fixture: a practice connected to its lab under a BAA

PHI = ("Jane", "Roe", "1961-04-02", "04/02/1961", "1961", "A-77")


def _submitted(p: Personas) -> Case:
    case = _ready_crown(p)
    actions.submit_case(_access(p), case)
    return case


def _detail_url(p: Personas, case: Case, lab: bool = False) -> str:
    return reverse("case_detail", args=[(p.lab if lab else p.practice).slug, case.number])


# --- downloads ----------------------------------------------------------------------------
def test_a_download_of_a_case_file_is_audited_with_the_patient_and_case(world: Personas) -> None:
    case = _submitted(world)
    attachment = case.attachments.first()
    assert attachment is not None
    response = signed_in_client(world.lab_manager).get(reverse("file_content", args=[attachment.stored_object_id]))
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = Event.objects.get(action="file.downloaded")
    assert event.patient_ref == str(case.patient_id)
    assert event.details["case"] == case.number
    assert event.actor_id == str(world.lab_manager.pk)


def test_a_download_of_an_unattached_upload_names_no_patient(world: Personas) -> None:
    stored = _file(_access(world))
    response = signed_in_client(world.members["clinician"]).get(reverse("file_content", args=[stored.pk]))
    assert response.status_code == 200
    event = Event.objects.get(action="file.downloaded")
    assert event.patient_ref == "" and "case" not in event.details


# --- messages -----------------------------------------------------------------------------
def test_a_message_refers_to_files_of_its_case_only(world: Personas) -> None:
    case, other = _submitted(world), _ready_crown(world)
    design = case.attachments.order_by("pk").first()
    message = actions.post_message(_lab(world), case, "See the upper scan.", attachments=[design])
    assert list(message.attachments.all()) == [design]
    event = Event.objects.filter(action="case.message.posted").latest("id")
    assert event.details["files"] == [str(design.stored_object_id)]
    foreign = other.attachments.first()
    with pytest.raises(ValidationError, match="only refer to files of this case"):
        actions.post_message(_lab(world), case, "Wrong file", attachments=[foreign])
    assert case.messages.count() == 1


def test_the_case_page_posts_a_message_with_chosen_files_and_shows_them(world: Personas) -> None:
    case = _submitted(world)
    chosen = list(case.attachments.order_by("pk")[:2])
    client = signed_in_client(world.members["clinician"])
    url = reverse("case_action", args=[world.practice.slug, case.number])
    response = client.post(url, {"operation": "message", "text": "Both scans", "attachments": [a.pk for a in chosen]})
    assert response.status_code == 302
    message = case.messages.get()
    assert set(message.attachments.all()) == set(chosen)
    page = client.get(_detail_url(world, case)).content.decode()
    assert "Refer to files of this case" in page
    assert f"{case.number}_upper_1.stl" in page.split('id="conversation"')[1]
    assert reverse("file_content", args=[chosen[0].stored_object_id]) in page.split('id="conversation"')[1]


def test_unread_messages_are_counted_on_the_dashboard_and_marked_new_once(world: Personas) -> None:
    case = _submitted(world)
    lab = _lab(world)
    actions.confirm_receipt(lab, case_for(lab, case.number))
    actions.post_message(lab, case, "Is the margin at 36 subgingival?")
    actions.post_message(lab, case, "And the shade photo is blurry.")
    clinician = signed_in_client(world.members["clinician"])
    dashboard = reverse("case_list", args=[world.practice.slug])
    assert "2 unread" in clinician.get(dashboard).content.decode()
    first = clinician.get(_detail_url(world, case)).content.decode()
    assert first.count('<span class="badge ok">new</span>') == 2
    second = clinician.get(_detail_url(world, case)).content.decode()
    assert '<span class="badge ok">new</span>' not in second
    unread_badge = 'title="Messages you have not read"'  # the page has an "Unread" tab and a bell too
    assert unread_badge not in clinician.get(dashboard).content.decode()
    # The author's own messages are never unread for them; another member's count is their own.
    assert (
        unread_badge
        not in signed_in_client(world.lab_manager).get(reverse("case_list", args=[world.lab.slug])).content.decode()
    )
    assert "2 unread" in signed_in_client(world.members["owner"]).get(dashboard).content.decode()


# --- e-mail -------------------------------------------------------------------------------
def test_notification_preferences_are_saved_and_respected(
    world: Personas,
    django_capture_on_commit_callbacks,
) -> None:
    clinician = world.members["clinician"]
    client = signed_in_client(clinician)
    page = client.get(reverse("security")).content.decode()
    assert "E-mail me about messages and questions" in page
    response = client.post(
        reverse("preferences"),
        {"full_name": "Dr. Clara Smile", "tooth_notation": "fdi", "notify_status": "on", "notify_designs": "on"},
    )
    assert response.status_code == 302
    clinician.refresh_from_db()
    assert (clinician.notify_new_cases, clinician.notify_status, clinician.notify_messages) == (False, True, False)
    assert clinician.notify_designs and clinician.tooth_notation == "fdi"

    case = _submitted(world)
    lab = _lab(world)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        actions.post_message(lab, case, "A question about the margin")
    recipients = {r for m in mail.outbox for r in m.to}
    assert clinician.email not in recipients and world.members["owner"].email in recipients
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        actions.confirm_receipt(lab, case_for(lab, case.number))
    assert clinician.email in {r for m in mail.outbox for r in m.to}


def test_no_email_of_a_whole_workflow_contains_the_patients_name_birth_date_or_chart(
    world: Personas,
    django_capture_on_commit_callbacks,
) -> None:
    practice, lab = _access(world), _lab(world)
    with django_capture_on_commit_callbacks(execute=True):
        case = actions.create_case(
            practice,
            patient_name="Jane Roe",
            patient_dob=date(1961, 4, 2),
            chart_number="A-77",
            case_type="digital_crown",
            lab=world.lab,
            due_date=timezone.now().date() + timedelta(days=7),
            ship_to="1 Main St",
            items=[ItemInput("crown", tooth=36)],
        )
        for label in ("upper", "lower", "bite"):
            actions.attach_file(practice, case, _file(practice), kind="scan", label=label)
        for _ in range(2):
            actions.attach_file(practice, case, _file(practice), kind="photo", label="shade")
    steps = [
        lambda: actions.submit_case(practice, case),
        lambda: actions.confirm_receipt(lab, case_for(lab, case.number)),
        lambda: actions.put_on_hold(lab, case_for(lab, case.number), "Jane Roe's shade: A2 or A3?"),
        lambda: actions.answer_hold(practice, case_for(practice, case.number), "A2 for Jane Roe."),
        lambda: actions.post_message(practice, case, "Chart A-77, born 1961-04-02"),
        lambda: actions.change_status(lab, case_for(lab, case.number), Status.IN_DESIGN),
        lambda: actions.attach_file(lab, case_for(lab, case.number), _file(lab), kind="design"),
        lambda: actions.request_design_approval(lab, case_for(lab, case.number), note="for Jane"),
        lambda: actions.decide_design(practice, case_for(practice, case.number), approve=True, note="ok Jane"),
        lambda: actions.change_status(lab, case_for(lab, case.number), Status.IN_PRODUCTION),
        lambda: actions.change_status(lab, case_for(lab, case.number), Status.QUALITY_CHECK),
        lambda: actions.change_status(lab, case_for(lab, case.number), Status.SHIPPED, tracking_number="1Z9"),
        lambda: actions.change_status(lab, case_for(lab, case.number), Status.DELIVERED),
        lambda: actions.complete_case(lab, case_for(lab, case.number)),
    ]
    for step in steps:
        with django_capture_on_commit_callbacks(execute=True):
            step()
    case.refresh_from_db()
    assert case.status == Status.COMPLETED
    assert len(mail.outbox) >= 9  # every kind of event told someone
    for message in mail.outbox:
        text = f"{message.subject}\n{message.body}"
        assert case.number in text
        leaked = [value for value in PHI if value in text]
        assert leaked == [], (message.subject, leaked)
