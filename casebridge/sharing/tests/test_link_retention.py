"""Retention of external links: a link that ended (expired, revoked or locked) goes, with its
codes and its list of files, once the organization's period after its end has passed (never
sooner than 30 days, never under a legal hold), and the patient's accounting of disclosures keeps
what it shows of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from casebridge.audit.models import Event
from casebridge.retention import policies
from casebridge.retention.models import RecordType
from casebridge.sharing import accounting
from casebridge.sharing.models import Disclosure, ExternalLink, OneTimeCode
from casebridge.sharing.tests.conftest import SharedCase

pytestmark = pytest.mark.django_db


def _ended(link: ExternalLink, days_ago: int, how: str = "revoked_at") -> None:
    ExternalLink.objects.filter(pk=link.pk).update(**{how: timezone.now() - timedelta(days=days_ago)})


def test_an_ended_link_goes_after_its_period_and_its_disclosure_stays(
    shared: SharedCase, make_link: Callable[..., tuple[ExternalLink, str]]
) -> None:
    access = shared.access
    with pytest.raises(ValidationError, match="at least 30 days"):
        policies.set_policy(access, RecordType.EXTERNAL_LINKS, 10)
    policies.set_policy(access, RecordType.EXTERNAL_LINKS, 60)
    revoked, _ = make_link()
    expired, _ = make_link()
    recent, _ = make_link()
    active, _ = make_link()
    OneTimeCode.objects.create(link=revoked, code_digest="0" * 64, expires_at=timezone.now())
    _ended(revoked, 61)
    _ended(expired, 70, "expires_at")
    _ended(recent, 59)  # inside the period

    items, kept = policies.due(access.organization)
    assert {i.record.pk for i in items} == {revoked.pk, expired.pk} and kept == []

    certificate = policies.enforce(access.organization)

    assert certificate is not None and certificate.items == 2
    assert set(ExternalLink.objects.values_list("pk", flat=True)) == {recent.pk, active.pk}
    assert not OneTimeCode.objects.filter(link_id=revoked.pk).exists()
    body = json.loads(certificate.body)
    assert {(d["kind"], d["record"]) for d in body["destroyed"]} == {
        ("link", str(revoked.pk)),
        ("link", str(expired.pk)),
    }
    assert revoked.recipient_email not in certificate.body  # no address in the certificate
    assert policies.verify_certificate(certificate)
    kept_rows = Disclosure.objects.filter(link__isnull=True)
    assert kept_rows.count() == 2
    assert {(d.copies, d.downloads, d.recipient_email) for d in kept_rows} == {
        ("originals", "0 of 5", revoked.recipient_email)
    }
    csv = accounting.as_csv(list(Disclosure.objects.order_by("disclosed_at")))
    assert csv.count("originals") == 4  # the two removed links' rows say it as the two live ones do
    event = Event.objects.get(action="retention.destroyed")
    assert (event.details["links"], event.details["files"], event.details["messages"]) == (2, 0, 0)


def test_a_legal_hold_keeps_an_ended_link(
    shared: SharedCase, make_link: Callable[..., tuple[ExternalLink, str]]
) -> None:
    policies.set_policy(shared.access, RecordType.EXTERNAL_LINKS, 30)
    link, _ = make_link()
    _ended(link, 400, "locked_at")
    policies.place_hold(shared.access, reason="Complaint under review", patient=shared.case.patient)

    assert policies.due(shared.access.organization) == ([], [policies.Kept(shared.case.number, "under legal hold")])
    assert policies.enforce(shared.access.organization) is None
    assert ExternalLink.objects.filter(pk=link.pk).exists()
