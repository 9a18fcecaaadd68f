"""The review screen's "include the archive": the segments are asked exactly what the hot tables
are asked (the same filters, checked event for event), the archived events follow the recent
ones page by page with nothing skipped or shown twice, the page says how many came from the
archive, the look is audited, and the wrong role or another organization gets nothing more."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from casebridge.audit import archive, chain, forensics, views
from casebridge.audit.api import record
from casebridge.audit.models import Event, PendingSeal, Seal
from casebridge.audit.queries import EventFilters, filters_from_query, for_archive, organization_events
from casebridge.audit.testing import archive_everything_so_far
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db

PATIENT = str(uuid.uuid4())
EMERGENCY = uuid.uuid4()


def _varied(p: Personas) -> None:
    org = p.practice.pk
    clinician = p.members["clinician"]
    rows: list[dict[str, Any]] = [
        {"action": "case.viewed", "patient_ref": PATIENT, "details": {"case": "CB-2026-000123"}},
        {"action": "case.viewed", "outcome": "denied", "ip": "10.0.0.7"},
        {"action": "file.downloaded", "emergency_access_id": EMERGENCY, "ip": "10.0.0.8"},
        {"action": "patient.viewed", "details": {"patients": [PATIENT]}},
        {"action": "cases.listed", "actor_label": "Someone.Else@example.com"},
    ]
    rows.append({"action": "case.viewed", "organization_id": p.other_practice.pk, "actor_label": p.outsider.email})
    for row in rows:
        event = Event.objects.create(  # with an IP and an emergency grant, as a request would give
            organization_id=row.pop("organization_id", org),
            actor_type="user",
            actor_id=str(clinician.pk),
            actor_label=row.pop("actor_label", clinician.email),
            **row,
        )
        PendingSeal.objects.create(event=event)
    chain.seal_pending()


QUERIES = [
    {},
    {"action": "case"},
    {"action": "case."},
    {"actor": "someone.else"},
    {"outcome": "denied"},
    {"case": "CB-2026-000123"},
    {"patient": PATIENT},
    {"ip": "10.0.0.8"},
    {"emergency": "1"},
    {"since": "2000-01-01", "until": "2999-01-01", "action": "file."},
    {"since": "2999-01-01"},
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_segments_are_asked_what_the_hot_tables_are(personas: Personas, query: dict[str, str]) -> None:
    _varied(personas)
    filters = filters_from_query(query)
    hot = set(organization_events(personas.practice.pk, filters).values_list("id", flat=True))
    archived = for_archive(personas.practice.pk, filters)
    canonical = [json.loads(chain.canonical(s.event, s.seq)) for s in Seal.objects.select_related("event")]
    assert {v["id"] for v in canonical if archived.match(v)} == hot
    assert query == {} or hot != set(
        organization_events(personas.practice.pk, EventFilters()).values_list("id", flat=True)
    )


def _walk(client: Any, url: str, query: dict[str, str]) -> tuple[list[int], list[str]]:
    ids: list[int] = []
    pages: list[str] = []
    address = url + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    while address:
        # A page that must read the archive sends the browser to its read's number (the worker,
        # immediate in tests, has read it by then): see test_archive_reads.py.
        response = client.get(address, follow=True)
        assert response.status_code == 200
        pages.append(response.content.decode())
        ids.extend(e.pk for e, _target, _description in response.context["rows"])
        address = url + "?" + response.context["next_query"] if response.context["next_query"] else ""
    return ids, pages


def test_the_archive_follows_the_recent_events_page_by_page(
    personas: Personas, monkeypatch: pytest.MonkeyPatch
) -> None:
    _varied(personas)
    archived = set(Event.objects.filter(organization_id=personas.practice.pk).values_list("id", flat=True))
    archive_everything_so_far()
    for n in range(4):
        record("case.viewed", actor=personas.members["clinician"], organization=personas.practice, details={"n": n})
    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("audit_log", args=[personas.practice.slug])

    recent, pages = _walk(auditor, url, {})
    assert not archived & set(recent) and "data-archive-note" not in pages[0]  # the hot path alone, as before

    ids, pages = _walk(auditor, url, {"archive": "1"})
    assert len(ids) == len(set(ids)) and set(ids) >= archived | set(recent)
    hot = [i for i, pk in enumerate(ids) if pk not in archived]
    assert max(hot) < min(ids.index(pk) for pk in archived)  # the recent ones first, then the archive
    assert any("archived events from" in page and "segment" in page and "(archived)" in page for page in pages)
    looks = Event.objects.filter(action="audit.viewed", organization_id=personas.practice.pk).order_by("id")
    with_archive = [e.details for e in looks if e.details["filters"].get("archive") == "1"]
    # Pages the hot tables filled read no segment; the others say how many they read.
    assert sum(d.get("archived", 0) for d in with_archive) == len(archived) and with_archive[-1]["segments"] >= 1

    only, _pages = _walk(auditor, url, {"archive": "1", "action": "file.", "ip": "10.0.0.8"})
    assert [Event.objects.filter(pk=i).exists() for i in only] == [False]  # the one archived download


def test_the_wrong_role_and_another_organization_get_nothing_more(personas: Personas) -> None:
    _varied(personas)
    archive_everything_so_far()
    url = reverse("audit_log", args=[personas.practice.slug])
    assert signed_in_client(personas.members["staff"]).get(url, {"archive": "1"}).status_code == 403
    other = reverse("audit_log", args=[personas.other_practice.slug])
    response = signed_in_client(personas.outsider).get(other, {"archive": "1"}, follow=True)
    shown = [e for e, _target, _description in response.context["rows"]]
    assert shown and all(str(e.organization_id) == str(personas.other_practice.pk) for e in shown)
    assert personas.members["clinician"].email not in response.content.decode()


def test_the_person_page_includes_the_archive_when_asked(personas: Personas) -> None:
    clinician = personas.members["clinician"]
    _varied(personas)
    record("auth.login.failed", actor_label=clinician.email, outcome="failure")  # no organization
    # What the page showed before these events left the hot tables.
    archived = {e.pk for e in forensics.person_activity(personas.practice, clinician.pk).events}
    assert len(archived) == 6  # five in the organization (by actor id), the failed sign-in (by e-mail)
    archive_everything_so_far()
    auditor = signed_in_client(personas.members["auditor"])
    url = reverse("person_forensics", args=[personas.practice.slug, clinician.pk])

    recent = auditor.get(url)
    assert "Include the archive" in recent.content.decode() and "data-archive-note" not in recent.content.decode()
    assert not archived & {e.pk for e, _label in recent.context["rows"]}

    response = auditor.get(url, {"archive": "1"})
    page = response.content.decode()
    assert {e.pk for e, _label in response.context["rows"]} == archived  # nothing more, nothing less
    assert f"includes {len(archived)} archived events from" in page and "(archived)" in page
    look = Event.objects.filter(action="audit.viewed", details__via="forensics.person").order_by("-id").first()
    assert look is not None and look.details["archive"] == "1"

    assert signed_in_client(personas.members["staff"]).get(url, {"archive": "1"}).status_code == 403
    other = reverse("person_forensics", args=[personas.other_practice.slug, clinician.pk])
    assert signed_in_client(personas.outsider).get(other, {"archive": "1"}).status_code == 404


def _exported(client: Any, slug: str, query: dict[str, str]) -> list[dict[str, str]]:
    response = client.get(reverse("audit_export", args=[slug]), query)
    assert response.status_code == 200 and response.streaming
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_includes_the_archive_when_asked(personas: Personas) -> None:
    _varied(personas)
    archived = set(Event.objects.filter(organization_id=personas.practice.pk).values_list("id", flat=True))
    archive_everything_so_far()
    for n in range(3):
        record("case.viewed", actor=personas.members["clinician"], organization=personas.practice, details={"n": n})
    auditor = signed_in_client(personas.members["auditor"])
    slug = personas.practice.slug

    recent = _exported(auditor, slug, {})
    assert recent and not archived & {int(r["id"]) for r in recent} and {r["archived"] for r in recent} == {""}

    rows = _exported(auditor, slug, {"archive": "1"})
    ids = [int(r["id"]) for r in rows]
    looked = Event.objects.filter(action="audit.exported").latest("id").pk  # this export, recorded first
    assert len(ids) == len(set(ids)) and set(ids) == archived | {int(r["id"]) for r in recent} | {looked}
    assert {int(r["id"]) for r in rows if r["archived"] == "yes"} == archived
    assert [r["archived"] for r in rows] == sorted((r["archived"] for r in rows), reverse=True)  # archive first
    download = next(r for r in rows if r["action"] == "file.downloaded")
    assert download["ip"] == "10.0.0.8" and download["emergency_access_id"] == str(EMERGENCY)
    assert json.loads(next(r for r in rows if r["action"] == "patient.viewed")["details"]) == {"patients": [PATIENT]}

    # The page's filters, asked of the segments as of the hot tables.
    only = _exported(auditor, slug, {"archive": "1", "action": "file.", "ip": "10.0.0.8"})
    assert [(r["action"], r["archived"]) for r in only] == [("file.downloaded", "yes")]
    by_patient = _exported(auditor, slug, {"archive": "1", "patient": PATIENT})
    assert [r["action"] for r in by_patient] == ["case.viewed"]

    exports = Event.objects.filter(action="audit.exported", organization_id=personas.practice.pk).order_by("id")
    assert [e.details["filters"].get("archive", "") for e in exports] == ["", "1", "1", "1"]
    last = exports.last()
    assert last is not None and last.details["filters"]["patient"] == PATIENT


def test_the_export_reads_one_segment_at_a_time(personas: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamed: the first rows go out after one segment is read, not after all of them."""
    for n in range(6):
        record("case.viewed", actor=personas.members["clinician"], organization=personas.practice, details={"n": n})
    chain.seal_pending()
    assert chain.checkpoint_now() is not None
    record("org.created", details={"n": 0})
    chain.seal_pending()
    segments = archive.archive(now=timezone.now() + timedelta(days=400), max_events=2)
    assert len(segments) >= 3
    read: list[Any] = []
    real = archive.events
    monkeypatch.setattr(archive, "events", lambda segment, content=None: (read.append(segment), real(segment))[1])
    monkeypatch.setattr(views, "EXPORT_BATCH", 1)
    response = signed_in_client(personas.members["auditor"]).get(
        reverse("audit_export", args=[personas.practice.slug]), {"archive": "1"}
    )
    stream = iter(response.streaming_content)
    next(stream), next(stream)  # the header, the first row
    assert len(read) == 1
    rest = b"".join(stream).decode()
    assert len(read) == len(segments) and rest.count(",yes\r\n") == 6 - 1


@pytest.mark.parametrize("when", ["before the recent rows are read", "after the recent rows are read"])
def test_events_archived_while_the_export_runs_are_exported_once(
    personas: Personas, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    _varied(personas)
    archive_everything_so_far()
    moved = record("case.viewed", actor=personas.members["clinician"], organization=personas.practice).pk
    auditor = signed_in_client(personas.members["auditor"])
    everything = {int(r["id"]) for r in _exported(auditor, personas.practice.slug, {"archive": "1"})}
    added: list[int] = []
    real = archive.search

    def search(filters: Any, **kwargs: Any) -> Any:
        first_pass = kwargs.get("upto_seq") is not None
        if not first_pass and when.startswith("after"):
            archive_everything_so_far()  # the recent rows are out: the new segment holds them again
        yield from real(filters, **kwargs)
        if first_pass and when.startswith("before"):
            archive_everything_so_far()  # these recent rows are no longer hot when the query runs
            added.append(record("case.viewed", actor=personas.members["clinician"], organization=personas.practice).pk)

    monkeypatch.setattr(archive, "search", search)
    rows = _exported(auditor, personas.practice.slug, {"archive": "1"})
    ids = [int(r["id"]) for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) >= everything | set(added)
    assert [r["action"] for r in rows if int(r["id"]) not in everything | set(added)] == ["audit.exported"]
    # Before: given from the segment written meanwhile; after: given hot, and not again.
    assert next(r["archived"] for r in rows if int(r["id"]) == moved) == ("yes" if when.startswith("before") else "")


def test_the_export_gives_the_wrong_role_and_another_organization_nothing_more(personas: Personas) -> None:
    _varied(personas)
    archive_everything_so_far()
    url = reverse("audit_export", args=[personas.practice.slug])
    for role in ("staff", "clinician"):
        assert signed_in_client(personas.members[role]).get(url, {"archive": "1"}).status_code == 403
    rows = _exported(signed_in_client(personas.outsider), personas.other_practice.slug, {"archive": "1"})
    assert any(r["archived"] == "yes" for r in rows)  # its own archived event, and nothing else
    assert personas.members["clinician"].email not in json.dumps(rows)
    organization_ids = {str(e.organization_id) for e in Event.objects.filter(action="audit.exported")}
    assert organization_ids == {str(personas.other_practice.pk)}
