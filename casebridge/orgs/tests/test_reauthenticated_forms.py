"""Pages whose changes ask for the identity again post their forms to their own address: after
confirming it, allauth runs the suspended request and its page (a refused form, with what was
typed) comes back under the re-authentication address, where a form without an action would post
to the wrong place and lose what was typed (found by the pixel-mask browser test)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["org_settings", "emergency", "service_accounts"])
def test_every_form_of_a_page_behind_re_authentication_names_its_address(personas: Personas, name: str) -> None:
    url = reverse(name, args=[personas.practice.slug])
    html = signed_in_client(personas.members["owner"]).get(url).content.decode()
    forms = re.findall(r"<form [^>]*>", html)
    posting = [form for form in forms if 'method="post"' in form and "/accounts/logout" not in form]
    assert posting, "the page shows a form"
    for form in posting:
        action = re.search(r'action="([^"]+)"', form)
        assert action is not None, form
        assert action.group(1).startswith(f"/o/{personas.practice.slug}/"), form
