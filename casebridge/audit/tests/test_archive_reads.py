"""The review screen reads the archive in the background: the page sends the browser to its read's
number, shows a progress bar that follows the segments read, and once the worker is done shows
the archived events below the recent ones. A read is its owner's alone (another person, another
organization, the wrong role or a token get nothing from its number), keeps no event content,
fails with a clear message when a segment cannot be read, and is deleted a day later."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.access.roles import Role
from casebridge.accounts.actions import create_api_token
from casebridge.audit import archive, archive_reads
from casebridge.audit.api import record
from casebridge.audit.models import ArchiveRead, ArchiveReadState, ArchiveSegment, Event
from casebridge.audit.queries import EventFilters
from casebridge.audit.testing import archive_everything_so_far
from casebridge.core.testing import Personas, add_member, make_user, signed_in_client

pytestmark = pytest.mark.django_db


def _archived(p: Personas, n: int = 3) -> set[int]:
    """n case views of the practice, archived, and one recent event after them."""
    for i in range(n):
        record("case.viewed", actor=p.members["clinician"], organization=p.practice, details={"i": i})
    archived = set(Event.objects.filter(organization_id=p.practice.pk).values_list("id", flat=True))
    archive_everything_so_far()
    record("case.viewed", actor=p.members["clinician"], organization=p.practice, details={"recent": True})
    return archived


def _queued(p: Personas, user: Any, query: str = "archive=1") -> ArchiveRead:
    """A read as the page starts it, before the worker has taken it."""
    return ArchiveRead.objects.create(organization=p.practice, user=user, query=query)


def test_the_page_sends_the_browser_to_its_read_and_shows_what_it_found(personas: Personas) -> None:
    archived = _archived(personas)
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    response = auditor.get(url, {"archive": "1", "action": "case."})
    assert response.status_code == 302
    job = ArchiveRead.objects.get()
    assert response["Location"] == f"{url}?archive=1&action=case.&read={job.pk}"
    # Only the read's number is in the address; the filters it answers are the page's own.
    assert job.query == "action=case.&archive=1" and job.user == personas.members["auditor"]
    assert job.state == ArchiveReadState.DONE and job.segments_done == job.segments_total == 1
    assert {pk for pk, _seq in job.found} == archived  # numbers only: no event content is kept
    page = auditor.get(response["Location"])
    shown = [e.pk for e, _target, _description in page.context["rows"]]
    assert set(shown) > archived and shown[-len(archived) :] == sorted(archived, reverse=True)
    assert "(archived)" in page.content.decode() and "1 archived segment read" in page.content.decode()
    assert 'id="archive-read"' not in page.content.decode()
    # Reloading the page shows the same read's result instead of reading the archive again.
    assert auditor.get(response["Location"]).status_code == 200 and ArchiveRead.objects.count() == 1


def test_while_the_worker_reads_the_page_shows_its_progress_then_reloads(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    _archived(personas, n=2)
    _archived(personas, n=2)
    _archived(personas, n=2)
    assert ArchiveSegment.objects.count() == 3
    auditor = signed_in_client(personas.members["auditor"])
    job = _queued(personas, personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    poll = reverse("audit_archive_read", args=[personas.practice.slug, job.pk])

    page = auditor.get(url, {"archive": "1", "read": str(job.pk)}).content.decode()
    assert 'id="archive-read"' in page and "Waiting for the background worker" in page
    assert f'hx-get="{poll}"' in page and "(archived)" not in page
    looked = Event.objects.filter(action="audit.viewed").latest("id")
    assert looked.details["archive"] == "reading"

    seen: list[tuple[int, int | None]] = []
    reading = archive.events

    def watched(segment: ArchiveSegment, content: bytes | None = None) -> Any:
        fragment = auditor.get(poll)  # what the page's poll shows while this segment is read
        row = ArchiveRead.objects.get(pk=job.pk)
        assert fragment.status_code == 200 and row.state == ArchiveReadState.READING
        assert f"{row.segments_done} of 3 segments" in fragment.content.decode()
        seen.append((row.segments_done, row.segments_total))
        return reading(segment, content)

    monkeypatch.setattr(archive_reads, "PROGRESS_EVERY", 0)
    monkeypatch.setattr(archive, "events", watched)
    archive_reads.read(str(job.pk), limit=51)
    assert seen == [(0, 3), (1, 3), (2, 3)]
    monkeypatch.setattr(archive, "events", reading)

    done = auditor.get(poll)
    assert done.status_code == 204 and done["HX-Refresh"] == "true"
    page = auditor.get(url, {"archive": "1", "read": str(job.pk)}).content.decode()
    assert 'id="archive-read"' not in page and "3 archived segments read" in page and "(archived)" in page


def test_a_read_is_for_its_question_only(personas: Personas) -> None:
    _archived(personas)
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    first = auditor.get(url, {"archive": "1", "action": "case."})
    job = ArchiveRead.objects.get()
    # The same number with other filters (or a malformed one) starts a read of its own.
    other = auditor.get(url, {"archive": "1", "action": "file.", "read": str(job.pk)})
    assert other.status_code == 302 and str(job.pk) not in other["Location"]
    assert auditor.get(url, {"archive": "1", "read": "not-a-number"}).status_code == 302
    assert ArchiveRead.objects.count() == 3 and first.status_code == 302
    assert archive_reads.key(EventFilters(action="file.", include_archive=True), 7) == (
        "action=file.&archive=1&archived_before=7"
    )


def test_without_segments_or_without_the_archive_nothing_is_read(personas: Personas) -> None:
    record("case.viewed", actor=personas.members["clinician"], organization=personas.practice)
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    assert auditor.get(url, {"archive": "1"}).status_code == 200  # no segment yet: nothing to wait for
    _archived(personas)
    assert auditor.get(url).status_code == 200
    assert not ArchiveRead.objects.exists()


def test_someone_else_gets_nothing_from_a_reads_number(personas: Personas) -> None:
    _archived(personas)
    owner = personas.members["auditor"]
    job = _queued(personas, owner)
    archive_reads.read(str(job.pk), limit=51)
    url = reverse("audit_log", args=[personas.practice.slug])
    poll = reverse("audit_archive_read", args=[personas.practice.slug, job.pk])
    assert signed_in_client(owner).get(poll).status_code == 204

    # Another auditor of the same organization: not theirs (404), and the page reads for them anew.
    colleague = make_user("auditor2@smile.test")
    add_member(personas.practice, colleague, Role.AUDITOR)
    assert signed_in_client(colleague).get(poll).status_code == 404
    again = signed_in_client(colleague).get(url, {"archive": "1", "read": str(job.pk)})
    assert again.status_code == 302 and str(job.pk) not in again["Location"]
    # The wrong role; a member of another organization, on theirs and on ours; nobody.
    assert signed_in_client(personas.members["staff"]).get(poll).status_code == 403
    theirs = reverse("audit_archive_read", args=[personas.other_practice.slug, job.pk])
    assert signed_in_client(personas.outsider).get(theirs).status_code == 404
    assert signed_in_client(personas.outsider).get(poll).status_code in (403, 404)
    from django.test import Client

    anonymous = Client().get(poll)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    # The owner's own token (audit:read) is refused: review pages are for people signed in.
    _token, raw = create_api_token(
        organization=personas.practice, name="t", scopes=["audit:read"], days=1, actor=owner, user=owner
    )
    bearer = Client().get(poll, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert bearer.status_code == 403
    # A deactivated membership ends access to one's own reads too.
    membership = owner.memberships.get(organization=personas.practice)
    membership.is_active = False
    membership.save(update_fields=["is_active"])
    assert signed_in_client(owner).get(poll).status_code in (403, 404)
    assert ArchiveRead.objects.filter(user=owner).count() == 1  # the colleague's read is their own


def test_a_segment_that_cannot_be_read_fails_the_read_with_a_clear_message(personas: Personas) -> None:
    archived = _archived(personas)
    # The segment's file replaced by one that is not it (a lost blob or a changed byte reads alike).
    ArchiveSegment.objects.update(blob_name="missing-" + ArchiveSegment.objects.get().blob_name)
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])
    page = auditor.get(url, {"archive": "1"}, follow=True)
    assert ArchiveRead.objects.get().state == ArchiveReadState.FAILED
    html = page.content.decode()
    assert "The archive could not be read" in html and "(archived)" not in html
    assert not archived & {e.pk for e, _target, _description in page.context["rows"]}
    assert Event.objects.filter(action="audit.viewed").latest("id").details["archive"] == "failed"


def test_reads_are_deleted_a_day_later(personas: Personas) -> None:
    old = _queued(personas, personas.members["auditor"])
    ArchiveRead.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1, minutes=1))
    new = _queued(personas, personas.members["auditor"])
    assert archive_reads.purge() == 1
    assert list(ArchiveRead.objects.values_list("pk", flat=True)) == [new.pk]
    assert archive_reads.find(str(old.pk), personas.practice, personas.members["auditor"]) is None
    assert archive_reads.find(str(uuid.uuid4()), personas.practice, personas.members["auditor"]) is None
