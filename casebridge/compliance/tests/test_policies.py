"""Policies: ready-written starting texts citing their rules; every save a new version (none lost);
only the newest approved, by a compliance manager, audited; members acknowledge the version in
effect; coverage counts active members; other organizations and wrong roles are refused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from casebridge.audit.models import Event
from casebridge.compliance import policies
from casebridge.compliance.models import Policy, PolicyAcknowledgement, PolicyKind, PolicyVersion
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


def _url(personas: Personas, kind: str = "sanctions") -> str:
    return reverse("policy", args=[personas.practice.slug, kind])


def test_every_starting_text_cites_its_rule(personas: Personas) -> None:
    for kind in PolicyKind:
        text = policies.template(kind, personas.practice)
        assert personas.practice.name in text
        assert "45 CFR" in text and policies.CITATIONS[kind].split(",")[0] in text
    assert "164.530(e)" in policies.template(PolicyKind.SANCTIONS, personas.practice)
    assert "164.310(d)" in policies.template(PolicyKind.DEVICE_MEDIA, personas.practice)


def test_edit_version_approve_acknowledge(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    page = officer.get(_url(personas))
    assert page.status_code == 200 and "164.530(e)" in page.content.decode()  # the starting text, unsaved
    assert not Policy.objects.exists()
    assert officer.post(_url(personas), {"operation": "save", "body": "Sanctions v1"}).status_code == 302
    assert officer.post(_url(personas), {"operation": "save", "body": "Sanctions v2"}).status_code == 302
    versions = list(PolicyVersion.objects.order_by("number"))
    assert [(v.number, v.body) for v in versions] == [(1, "Sanctions v1"), (2, "Sanctions v2")]  # v1 kept
    # Only the newest can be approved.
    assert officer.post(_url(personas), {"operation": "approve", "version": str(versions[0].pk)}).status_code == 400
    assert officer.post(_url(personas), {"operation": "approve", "version": str(versions[1].pk)}).status_code == 302
    staff = signed_in_client(personas.members["staff"])
    assert "Sanctions v2" in staff.get(_url(personas)).content.decode()
    assert staff.post(_url(personas), {"operation": "acknowledge"}).status_code == 302
    assert staff.post(_url(personas), {"operation": "acknowledge"}).status_code == 400  # once per version
    status = next(s for s in policies.statuses(personas.practice) if s.kind == "sanctions")
    assert status.current == versions[1] and status.acknowledged == 1 and status.members > 1
    # A new approved version needs a new acknowledgement.
    officer.post(_url(personas), {"operation": "save", "body": "Sanctions v3"})
    newest = PolicyVersion.objects.get(number=3)
    officer.post(_url(personas), {"operation": "approve", "version": str(newest.pk)})
    status = next(s for s in policies.statuses(personas.practice) if s.kind == "sanctions")
    assert status.current == newest and status.acknowledged == 0
    actions = list(Event.objects.filter(action__startswith="compliance.policy.").values_list("action", "details"))
    assert ("compliance.policy.approved", {"kind": "sanctions", "version": 2}) in actions
    assert ("compliance.policy.acknowledged", {"kind": "sanctions", "version": 2}) in actions
    assert sum(1 for a, _ in actions if a == "compliance.policy.saved") == 3


def test_bad_input_changes_nothing(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    assert officer.post(_url(personas), {"operation": "save", "body": "   "}).status_code == 400
    assert officer.post(_url(personas), {"operation": "save", "body": "x" * 50_001}).status_code == 400
    officer.post(_url(personas), {"operation": "save", "body": "Same"})
    assert officer.post(_url(personas), {"operation": "save", "body": "Same"}).status_code == 400  # unchanged
    assert PolicyVersion.objects.count() == 1
    # Nothing approved: nothing to acknowledge.
    assert (
        signed_in_client(personas.members["staff"]).post(_url(personas), {"operation": "acknowledge"}).status_code
        == 400
    )
    assert officer.post(_url(personas, "retention"), {"operation": "acknowledge"}).status_code == 400
    assert not PolicyAcknowledgement.objects.exists() and not Policy.objects.filter(kind="retention").exists()
    assert officer.get(reverse("policy", args=[personas.practice.slug, "no-such-policy"])).status_code == 404


def test_wrong_role_and_other_organization(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    officer.post(_url(personas), {"operation": "save", "body": "Ours"})
    version = PolicyVersion.objects.get()
    staff = signed_in_client(personas.members["staff"])
    assert staff.post(_url(personas), {"operation": "save", "body": "Mine"}).status_code == 403
    assert staff.post(_url(personas), {"operation": "approve", "version": str(version.pk)}).status_code == 403
    assert "Ours" not in staff.get(_url(personas)).content.decode()  # drafts are the managers'
    other = reverse("policy", args=[personas.other_practice.slug, "sanctions"])
    assert officer.post(other, {"operation": "save", "body": "Theirs"}).status_code == 404
    assert officer.get(reverse("policies", args=[personas.other_practice.slug])).status_code == 404
    assert PolicyVersion.objects.get().approved_at is None and PolicyVersion.objects.count() == 1
    listing = staff.get(reverse("policies", args=[personas.practice.slug]))
    assert listing.status_code == 200 and "none approved" in listing.content.decode()


def test_versions_are_kept_six_years_after_they_leave_effect(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    for body in ("One", "Two"):
        officer.post(_url(personas), {"operation": "save", "body": body})
        version = PolicyVersion.objects.get(body=body)
        officer.post(_url(personas), {"operation": "approve", "version": str(version.pk)})
    officer.post(_url(personas), {"operation": "save", "body": "Three, a draft"})
    versions = list(PolicyVersion.objects.order_by("-number"))
    until = policies.kept_until(versions)
    one, two, three = versions[2], versions[1], versions[0]
    assert until[three.pk] is None and until[two.pk] is None  # may still take effect; in effect
    assert two.approved_at is not None
    assert until[one.pk] == two.approved_at.date().replace(year=two.approved_at.year + 6)
    page = officer.get(_url(personas)).content.decode()
    assert "kept at least until" in page and "Not acknowledged yet" in page
