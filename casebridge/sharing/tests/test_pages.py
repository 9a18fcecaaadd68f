"""The practice's side: the sharing section on the case page, the share and revoke views, and
the accounting of disclosures for compliance officers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core import mail

from casebridge.audit.models import Event
from casebridge.core.testing import signed_in_client
from casebridge.sharing.models import Disclosure, ExternalLink
from casebridge.sharing.tests.conftest import PATIENT, RECIPIENT, SharedCase

pytestmark = pytest.mark.django_db

MakeLink = Callable[..., tuple[ExternalLink, str]]


def _share_url(shared: SharedCase) -> str:
    return f"/o/{shared.personas.practice.slug}/cases/{shared.case.number}/share/"


def test_the_case_page_offers_sharing_to_the_practice(shared: SharedCase, make_link: MakeLink) -> None:
    make_link()
    client = signed_in_client(shared.personas.members["clinician"])
    page = client.get(f"/o/{shared.personas.practice.slug}/cases/{shared.case.number}/").content.decode()
    assert "Share with someone outside CaseBridge" in page and RECIPIENT in page and "Revoke" in page


def test_the_lab_sees_no_sharing_section(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.lab_manager)
    page = client.get(f"/o/{shared.personas.lab.slug}/cases/{shared.case.number}/")
    assert page.status_code == 200 and "Share with someone outside" not in page.content.decode()
    assert client.get(f"/o/{shared.personas.lab.slug}/cases/{shared.case.number}/share/").status_code == 403


def test_sharing_from_the_form(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    files = [str(a.stored_object_id) for a in shared.case.attachments.all()[:3]]
    response = client.post(
        _share_url(shared),
        {
            "shared_files": files,
            "recipient_email": RECIPIENT,
            "purpose": "Referral to an oral surgeon",
            "expires_in_days": 3,
            "max_downloads": 2,
        },
    )
    assert response.status_code == 302
    link = ExternalLink.objects.get()
    assert link.max_downloads == 2 and link.attachments.count() == 3
    assert mail.outbox[-1].to == [RECIPIENT]
    assert Disclosure.objects.get().purpose == "Referral to an oral surgeon"


def test_the_form_refuses_too_long_a_link(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    files = [str(shared.case.attachments.first().stored_object_id)]
    response = client.post(
        _share_url(shared),
        {
            "shared_files": files,
            "recipient_email": RECIPIENT,
            "purpose": "x",
            "expires_in_days": 31,
            "max_downloads": 2,
        },
    )
    assert response.status_code == 400 and not ExternalLink.objects.exists()


def test_revoking_from_the_page(shared: SharedCase, make_link: MakeLink) -> None:
    link, token = make_link()
    client = signed_in_client(shared.personas.members["staff"])
    response = client.post(f"{_share_url(shared)}{link.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == f"{_case_url(shared)}#sharing"
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert client.get(f"/s/{token}/").status_code == 404


def test_outsiders_cannot_reach_the_sharing_pages(shared: SharedCase, make_link: MakeLink) -> None:
    link, _ = make_link()
    outsider = signed_in_client(shared.personas.outsider)
    assert outsider.get(_share_url(shared)).status_code == 404
    assert outsider.post(f"{_share_url(shared)}{link.pk}/revoke/").status_code == 404
    other_case_link = f"/o/other-dental/cases/{shared.case.number}/share/{link.pk}/revoke/"
    assert outsider.post(other_case_link).status_code == 404
    link.refresh_from_db()
    assert link.revoked_at is None


def test_the_accounting_of_disclosures(shared: SharedCase, make_link: MakeLink) -> None:
    make_link()
    url = f"/o/{shared.personas.practice.slug}/disclosures/"
    officer = signed_in_client(shared.personas.members["compliance_officer"])
    page = officer.get(url).content.decode()
    assert PATIENT in page and RECIPIENT in page and "Second opinion requested by the patient" in page
    elsewhere = officer.post(url, {"patient": "Somebody Else"})
    assert elsewhere.status_code == 302 and "Somebody" not in elsewhere["Location"]  # posted, kept out of URLs
    assert PATIENT not in officer.get(elsewhere["Location"]).content.decode()
    assert PATIENT in officer.post(url, {"patient": "roe"}, follow=True).content.decode()
    # Each view names the patients it showed (references only, never the search text).
    viewed = list(Event.objects.filter(action="share.disclosures.viewed").order_by("id"))
    assert [e.details["patients"] for e in viewed] == [[str(shared.case.patient_id)], [], [str(shared.case.patient_id)]]
    assert "roe" not in str(viewed[-1].details).lower()
    assert signed_in_client(shared.personas.members["clinician"]).get(url).status_code == 403
    assert signed_in_client(shared.personas.outsider).get(url).status_code == 404


# --- a refused share comes back where it was filled in ---------------------------------------
def _case_url(shared: SharedCase) -> str:
    return f"/o/{shared.personas.practice.slug}/cases/{shared.case.number}/"


NO_FILE = {"recipient_email": RECIPIENT, "purpose": "Second opinion", "expires_in_days": 7, "max_downloads": 5}


def test_without_javascript_a_refusal_shows_the_case_page_with_the_error_by_the_files(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    mail.outbox.clear()
    response = client.post(_share_url(shared), NO_FILE)
    assert response.status_code == 400
    page = response.content.decode()
    assert '<h2 id="h-messages">Conversation</h2>' in page  # the case page itself, not a bare form
    start = page.index('<fieldset class="invalid"')
    fieldset = page[start : page.index("</fieldset>", start)]
    assert "Choose at least one file to share." in fieldset
    assert 'aria-describedby="id_shared_files_errors"' in fieldset and "autofocus" in fieldset
    assert f'value="{RECIPIENT}"' in page and 'value="Second opinion"' in page  # nothing typed is lost
    assert not ExternalLink.objects.exists() and not mail.outbox


def test_with_htmx_a_refusal_replaces_only_the_sharing_section(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    response = client.post(_share_url(shared), {**NO_FILE, "recipient_email": "not-an-address"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # htmx swaps only successful answers
    assert "HX-Request" in response["Vary"]
    section = response.content.decode()
    assert section.lstrip().startswith('<section class="card" aria-labelledby="h-share" id="sharing">')
    assert "<html" not in section
    assert "Choose at least one file to share." in section
    assert "Enter a complete e-mail address, like name@example.com." in section
    assert not ExternalLink.objects.exists()


def test_with_htmx_a_share_shows_what_was_done_in_the_section(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    files = [str(shared.case.attachments.first().stored_object_id)]
    response = client.post(_share_url(shared), {**NO_FILE, "shared_files": files}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    section = response.content.decode()
    assert "The link was e-mailed to j***@example.com" in section
    assert f"<td>{RECIPIENT}</td>" in section and 'class="invalid"' not in section
    assert ExternalLink.objects.count() == 1 and mail.outbox[-1].to == [RECIPIENT]


def test_without_javascript_a_share_returns_to_the_case_page(shared: SharedCase) -> None:
    client = signed_in_client(shared.personas.members["clinician"])
    files = [str(shared.case.attachments.first().stored_object_id)]
    response = client.post(_share_url(shared), {**NO_FILE, "shared_files": files})
    assert response.status_code == 302 and response["Location"] == f"{_case_url(shared)}#sharing"


def test_the_section_is_not_given_to_those_who_may_not_share(shared: SharedCase) -> None:
    lab = signed_in_client(shared.personas.lab_manager)
    lab_url = f"/o/{shared.personas.lab.slug}/cases/{shared.case.number}/share/"
    assert lab.post(lab_url, NO_FILE, HTTP_HX_REQUEST="true").status_code == 403
    outsider = signed_in_client(shared.personas.outsider)
    assert outsider.post(_share_url(shared), NO_FILE, HTTP_HX_REQUEST="true").status_code == 404
    auditor = signed_in_client(shared.personas.members["auditor"])
    assert auditor.post(_share_url(shared), NO_FILE, HTTP_HX_REQUEST="true").status_code == 403
    assert not ExternalLink.objects.exists()
