"""Forensics pages for auditors and compliance officers (issue 15, item 7): on one page, every
open, code attempt and download of an external link; every download (and byte range) of a file;
every session and sign-in of a person, each with its time, IP address and user agent.

Everything comes from the organization's own audit events (and, for a person, the sessions the
sign-in system keeps): nothing is shown that the organization's log does not hold. Looking is
itself an audit event (`audit.viewed` with what was looked at)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from allauth.usersessions.models import UserSession
from django.db.models import Q
from django.http import Http404

from casebridge.accounts.models import User
from casebridge.audit import history
from casebridge.audit.archive import Filters
from casebridge.audit.models import Event
from casebridge.orgs.models import Organization
from casebridge.sharing.models import ExternalLink

LIMIT = 2000
# Events that name files in their details (`file`, or `files` for an archive) rather than as
# their target (an external link's downloads have the link as target).
DETAIL_DOWNLOADS = ("case.files_downloaded", "share.files.downloaded", "share.file.downloaded")


@dataclass
class Activity:
    title: str
    subject: str
    events: list[Event]
    sessions: list[UserSession]
    facts: list[tuple[str, str]]
    archive_note: str = ""  # "includes N archived events from <period>" (audit/history.py)


def _events(query: Q, organization: Organization) -> list[Event]:
    return list(Event.objects.filter(query, organization_id=organization.pk).order_by("occurred_at", "id")[:LIMIT])


def link_activity(organization: Organization, link_id: uuid.UUID, include_archive: bool = False) -> Activity:
    link = ExternalLink.objects.filter(pk=link_id, case__practice=organization).select_related("case").first()
    if link is None:
        raise Http404("no such link")
    facts = [
        ("Case", link.case.number),
        ("Created", f"{link.created_at:%Y-%m-%d %H:%M} UTC"),
        ("Expires", f"{link.expires_at:%Y-%m-%d %H:%M} UTC"),
        ("Downloads", f"{link.downloads_used} of {link.max_downloads}"),
        ("Wrong codes", str(link.failed_attempts)),
        ("State", "revoked" if link.revoked_at else "locked" if link.locked_at else "active"),
    ]
    wanted = str(link.pk)
    events = _events(Q(target_id=wanted), organization)
    note = ""
    if include_archive:  # the same question of the segments (events older than 13 months)
        reading = history.combined(
            events, Filters(organization=str(organization.pk)), limit=LIMIT, keep=lambda v: v["target_id"] == wanted
        )
        events, note = reading.events, reading.note
    return Activity("External link", wanted, events, [], facts, note)


def _names_file(details: object, wanted: str) -> bool:
    """An event that names the file in its details (a ZIP's `files`, a link's `file`)."""
    return isinstance(details, dict) and (details.get("file") == wanted or wanted in (details.get("files") or []))


def file_activity(organization: Organization, file_id: uuid.UUID, include_archive: bool = False) -> Activity:
    wanted = str(file_id)
    named = _events(Q(target_id=wanted), organization)
    recent = Event.objects.filter(organization_id=organization.pk, action__in=DETAIL_DOWNLOADS).order_by("-id")
    archives = [e for e in recent[:LIMIT] if _names_file(e.details, wanted)]
    events = sorted(named + archives, key=lambda e: (e.occurred_at, e.pk))
    note = ""
    if include_archive or not events:  # nothing recent names it: its history is in the archive, if anywhere
        reading = history.combined(
            events,
            Filters(organization=str(organization.pk)),
            limit=LIMIT,
            keep=lambda v: (
                v["target_id"] == wanted or (v["action"] in DETAIL_DOWNLOADS and _names_file(v.get("details"), wanted))
            ),
        )
        events, note = reading.events, reading.note
    if not events:
        raise Http404("no such file in this organization's log")
    ranges = sum(1 for e in events if isinstance(e.details, dict) and e.details.get("range"))
    downloads = sum(1 for e in events if "downloaded" in e.action)
    facts = [("Downloads", str(downloads)), ("Partial (ranges)", str(ranges))]
    return Activity("File", wanted, events, [], facts, note)


def person_activity(organization: Organization, user_id: uuid.UUID, include_archive: bool = False) -> Activity:
    user = User.objects.filter(pk=user_id, memberships__organization=organization).distinct().first()
    if user is None:
        raise Http404("no such member")
    sign_ins = Q(action__startswith="auth.") & (Q(actor_id=str(user.pk)) | Q(actor_label__iexact=user.email))
    events = list(
        Event.objects.filter(sign_ins | Q(organization_id=organization.pk, actor_id=str(user.pk))).order_by(
            "-occurred_at", "-id"
        )[:LIMIT]
    )
    events.reverse()
    note = ""
    if include_archive:  # the same question of the segments (events older than 13 months)
        mine = str(user.pk)
        reading = history.combined(
            events,
            [
                Filters(organization=str(organization.pk), actor=mine),
                Filters(action="auth.", actor=mine),
                *(Filters(action="auth.", actor=label) for label in dict.fromkeys((user.email, user.email.lower()))),
            ],
            limit=LIMIT,
            newest=True,
        )
        events, note = reading.events, reading.note
    sessions = list(UserSession.objects.filter(user=user).order_by("-last_seen_at")[:100])
    facts: list[tuple[str, Any]] = [("Person", user.email), ("Sessions kept", str(len(sessions)))]
    return Activity("Person", user.email, events, sessions, facts, note)
