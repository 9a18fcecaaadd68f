"""Every protected organization view, visited by every persona: owner, each role, an outsider,
a deactivated member, anonymous. Outsiders get 404 (no hint the organization exists), members
lacking the permission get 403."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from django.urls.converters import IntConverter

from casebridge.access.guards import ACCESS_ATTR
from casebridge.access.roles import Perm, permissions_for
from casebridge.core.testing import Personas, signed_in_client, without_csrf_token
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db


def _org_patterns() -> list[URLPattern]:
    for entry in get_resolver().url_patterns:
        if str(getattr(entry, "pattern", "")) == "o/<slug:org>/":
            return list(entry.url_patterns)
    raise AssertionError("organization URLs not found")


def _kwargs(pattern: URLPattern, personas: Personas) -> dict[str, Any]:
    membership = Membership.objects.get(organization=personas.practice, user=personas.members["staff"])
    values = {"membership_id": membership.pk}
    kwargs: dict[str, Any] = {"org": personas.practice.slug}
    for name, converter in pattern.pattern.converters.items():
        kwargs[name] = values.get(name, 1 if isinstance(converter, IntConverter) else uuid.uuid4())
    return kwargs


def _request(client: Client, pattern: URLPattern, personas: Personas) -> int:
    url = reverse(pattern.name, kwargs=_kwargs(pattern, personas))
    response = client.get(url)
    if response.status_code == 405:  # POST-only action
        response = client.post(url, {})
    return response.status_code


def _protected() -> list[tuple[URLPattern, Perm]]:
    return [(p, Perm(getattr(p.callback, ACCESS_ATTR))) for p in _org_patterns()]


@pytest.mark.parametrize(
    "role", ["owner", "admin", "clinician", "staff", "technician", "lab_manager", "compliance_officer", "auditor"]
)
def test_each_role_gets_exactly_its_permissions(personas: Personas, role: str) -> None:
    client = signed_in_client(personas.members[role])
    allowed = permissions_for(role)
    for pattern, perm in _protected():
        status = _request(client, pattern, personas)
        if perm in allowed:
            # Allowed: the view runs (a page, a redirect after an action, an empty form refused
            # with 400 and its errors, or 404 for a made-up id).
            assert status in (200, 302, 400, 404), f"{role} {pattern.name}: {status}"
            if not pattern.pattern.converters.keys() - {"org"}:
                assert status in (200, 302, 400), f"{role} should reach {pattern.name}, got {status}"
        else:
            assert status == 403, f"{role} must be refused {pattern.name} ({perm}), got {status}"


def test_outsiders_get_404_everywhere(personas: Personas) -> None:
    client = signed_in_client(personas.outsider)
    for pattern, _perm in _protected():
        assert _request(client, pattern, personas) == 404, pattern.name


def test_deactivated_members_get_404_everywhere(personas: Personas) -> None:
    client = signed_in_client(personas.deactivated)
    for pattern, _perm in _protected():
        assert _request(client, pattern, personas) == 404, pattern.name


def test_anonymous_visitors_are_sent_to_sign_in(personas: Personas) -> None:
    client = Client()
    for pattern, _perm in _protected():
        url = reverse(pattern.name, kwargs=_kwargs(pattern, personas))
        response = client.get(url)
        if response.status_code == 405:
            response = client.post(url, {})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], pattern.name


def test_unknown_organization_looks_the_same_as_a_foreign_one(personas: Personas) -> None:
    client = signed_in_client(personas.outsider)
    foreign = client.get(reverse("members", args=[personas.practice.slug]))
    missing = client.get(reverse("members", args=["no-such-org"]))
    assert foreign.status_code == missing.status_code == 404
    assert without_csrf_token(foreign.content) == without_csrf_token(missing.content)


def test_objects_of_another_organization_are_404_even_with_the_permission(personas: Personas) -> None:
    # The practice owner manages members, but not the other practice's members.
    foreign_membership = Membership.objects.get(organization=personas.other_practice)
    client = signed_in_client(personas.members["owner"])
    response = client.post(
        reverse("member_update", args=[personas.practice.slug, foreign_membership.pk]),
        {"operation": "deactivate"},
    )
    assert response.status_code == 404
    foreign_membership.refresh_from_db()
    assert foreign_membership.is_active
