"""Organization pages are for people in a browser: an API token, whatever its scopes and
whoever owns it, gets 403 on every one of them (org_permission has no way to let tokens in)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from casebridge.access.guards import ACCESS_ATTR
from casebridge.access.roles import Perm
from casebridge.access.tests.test_url_coverage import _walk
from casebridge.accounts.actions import create_api_token
from casebridge.accounts.models import TokenScope
from casebridge.core.testing import Personas

pytestmark = pytest.mark.django_db


def _org_pages() -> list[str]:
    """Names of the pages guarded by org_permission that take only the organization."""
    names = []
    for route, pattern in _walk(get_resolver().url_patterns):
        guarded = getattr(pattern.callback, ACCESS_ATTR, None) in Perm.values
        if guarded and pattern.name and route.count("<") == 1 and "<slug:org>" in route:
            names.append(pattern.name)
    return sorted(set(names))


def test_there_are_organization_pages_to_check() -> None:
    assert {"audit_log", "members", "service_accounts"} <= set(_org_pages())


@pytest.mark.parametrize("name", _org_pages())
def test_an_owners_token_with_every_scope_is_refused_on_every_organization_page(personas: Personas, name: str) -> None:
    owner = personas.members["owner"]
    _token, raw = create_api_token(
        organization=personas.practice, name="all", scopes=TokenScope.values, days=1, actor=owner, user=owner
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = reverse(name, args=[personas.practice.slug])
    # A page that takes one method answers the other 405 before any guard; the one it takes, 403.
    answers = {client.get(url, secure=True).status_code, client.post(url, secure=True).status_code}
    assert 403 in answers and answers <= {403, 405}
