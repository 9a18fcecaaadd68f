"""Forensics (issue 15, item 7): one page per external link with every open, code attempt and
download (time, IP, user agent); per file every download and range; per person every session
and sign-in. Auditors and compliance officers of the organization only; looking is audited."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.audit.models import Event
from casebridge.core.testing import signed_in_client
from casebridge.sharing.tests.conftest import SharedCase, last_code
from casebridge.sharing.tests.test_links import MakeLink

pytestmark = pytest.mark.django_db


def test_a_links_page_shows_every_open_code_attempt_and_download_with_ip_and_agent(
    shared: SharedCase, make_link: MakeLink
) -> None:
    link, token = make_link(max_downloads=3)
    recipient = Client(HTTP_USER_AGENT="RecipientBrowser/1.0", REMOTE_ADDR="203.0.113.7")
    recipient.get(f"/s/{token}/")
    recipient.post(f"/s/{token}/code/")
    recipient.post(f"/s/{token}/verify/", {"code": "000000" if last_code() != "000000" else "111111"})
    recipient.post(f"/s/{token}/verify/", {"code": last_code()})
    file_id = str(link.attachments.values_list("stored_object_id", flat=True)[0])
    recipient.get(f"/s/{token}/files/{file_id}/", headers={"Range": "bytes=0-99"})
    officer = signed_in_client(shared.personas.members["compliance_officer"])
    page = officer.get(reverse("link_forensics", args=[shared.personas.practice.slug, link.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    for action in ("share.link.opened", "share.code.sent", "share.code.failed", "share.code.verified"):
        assert action in body
    assert "203.0.113.7" in body and "RecipientBrowser/1.0" in body
    assert "Wrong codes</dt><dd>1" in body
    viewed = Event.objects.filter(action="audit.viewed").latest("id")
    assert viewed.details["via"] == "forensics.link" and viewed.details["subject"] == str(link.pk)
    file_page = officer.get(reverse("file_forensics", args=[shared.personas.practice.slug, file_id])).content.decode()
    assert "share.file.downloaded" in file_page and "bytes 0 to 100" in file_page


def test_a_persons_page_lists_their_sessions_and_sign_ins(shared: SharedCase) -> None:
    staff = shared.personas.members["staff"]
    signed_in_client(staff)  # a session of theirs
    officer = signed_in_client(shared.personas.members["compliance_officer"])
    page = officer.get(reverse("person_forensics", args=[shared.personas.practice.slug, staff.pk]))
    assert page.status_code == 200 and staff.email in page.content.decode()


def test_only_the_organizations_auditors_see_it(shared: SharedCase, make_link: MakeLink) -> None:
    link, _token = make_link()
    slug = shared.personas.practice.slug
    staff = signed_in_client(shared.personas.members["staff"])
    assert staff.get(reverse("link_forensics", args=[slug, link.pk])).status_code == 403
    outsider = signed_in_client(shared.personas.outsider)
    other = shared.personas.other_practice.slug
    assert outsider.get(reverse("link_forensics", args=[other, link.pk])).status_code == 404
    assert (
        outsider.get(reverse("person_forensics", args=[other, shared.personas.members["staff"].pk])).status_code == 404
    )
    lab = signed_in_client(shared.personas.lab_manager)
    assert lab.get(reverse("link_forensics", args=[shared.personas.lab.slug, link.pk])).status_code in (403, 404)


def test_the_link_and_file_pages_include_the_archive_when_asked(shared: SharedCase, make_link: MakeLink) -> None:
    from casebridge.audit.testing import archive_everything_so_far

    link, token = make_link(max_downloads=3)
    recipient = Client(HTTP_USER_AGENT="RecipientBrowser/1.0", REMOTE_ADDR="203.0.113.7")
    recipient.get(f"/s/{token}/")
    recipient.post(f"/s/{token}/code/")
    recipient.post(f"/s/{token}/verify/", {"code": last_code()})
    file_id = str(link.attachments.values_list("stored_object_id", flat=True)[0])
    recipient.get(f"/s/{token}/files/{file_id}/")
    slug = shared.personas.practice.slug
    officer = signed_in_client(shared.personas.members["compliance_officer"])
    link_url = reverse("link_forensics", args=[slug, link.pk])
    file_url = reverse("file_forensics", args=[slug, file_id])
    # What the pages showed before these events left the hot tables.
    before_link = {e.pk for e, _label in officer.get(link_url).context["rows"]}
    before_file = {e.pk for e, _label in officer.get(file_url).context["rows"]}
    assert before_link and before_file
    archive_everything_so_far()

    recent = officer.get(link_url)
    assert "Include the archive" in recent.content.decode()
    assert not before_link & {e.pk for e, _label in recent.context["rows"]}
    only_archived = officer.get(file_url)  # nothing recent names it: the archive is read at once
    assert {e.pk for e, _label in only_archived.context["rows"]} == before_file
    assert "data-archive-note" in only_archived.content.decode()

    with_archive = officer.get(link_url, {"archive": "1"})
    assert {e.pk for e, _label in with_archive.context["rows"]} == before_link  # nothing more, nothing less
    assert "(archived)" in with_archive.content.decode() and "203.0.113.7" in with_archive.content.decode()
    file_page = officer.get(file_url, {"archive": "1"})
    assert {e.pk for e, _label in file_page.context["rows"]} == before_file
    assert "share.file.downloaded" in file_page.content.decode()
    look = Event.objects.filter(action="audit.viewed", details__via="forensics.file").order_by("-id").first()
    assert look is not None and look.details["archive"] == "1"

    assert signed_in_client(shared.personas.members["staff"]).get(link_url, {"archive": "1"}).status_code == 403
    other = reverse("link_forensics", args=[shared.personas.other_practice.slug, link.pk])
    assert signed_in_client(shared.personas.outsider).get(other, {"archive": "1"}).status_code == 404
