"""The organization navigation is the same on every page, the account pages included: they have
no organization in their URL, so they show the one the person last worked in (the session's)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from casebridge.core.testing import Personas, signed_in_client
from casebridge.orgs.models import Membership

pytestmark = pytest.mark.django_db


def _nav_links(client: Client, url: str) -> list[str]:
    html = client.get(url).content.decode()
    nav = re.search(r'<nav class="orgnav" aria-label="Organization">(.*?)</nav>', html, re.S)
    return re.findall(r">([^<>]+)</a>", nav.group(1)) if nav else []


def test_the_security_page_shows_the_whole_navigation_of_the_current_organization(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    on_home = _nav_links(client, reverse("org_home", args=[personas.practice.slug]))
    assert {"Cases", "Files", "Connections", "Audit log", "Settings"} <= set(on_home)
    assert _nav_links(client, reverse("security")) == on_home


def test_account_pages_show_only_what_the_role_allows(personas: Personas) -> None:
    client = signed_in_client(personas.members["clinician"])
    client.get(reverse("org_home", args=[personas.practice.slug]))
    links = _nav_links(client, reverse("security"))
    assert "Cases" in links and "Audit log" not in links and "Settings" not in links


def test_a_member_removed_meanwhile_gets_no_navigation_of_that_organization(personas: Personas) -> None:
    owner = personas.members["owner"]
    client = signed_in_client(owner)
    client.get(reverse("org_home", args=[personas.practice.slug]))
    Membership.objects.filter(user=owner, organization=personas.practice).update(is_active=False)
    html = client.get(reverse("security")).content.decode()
    assert 'class="orgnav"' not in html and personas.practice.name not in html


def test_a_session_naming_another_organization_shows_nothing_of_it(personas: Personas) -> None:
    client = signed_in_client(personas.outsider)
    session = client.session
    session["current_org"] = personas.practice.slug  # not theirs: a stale or forged value
    session.save()
    html = client.get(reverse("security")).content.decode()
    assert personas.practice.name not in html and reverse("case_list", args=[personas.practice.slug]) not in html
