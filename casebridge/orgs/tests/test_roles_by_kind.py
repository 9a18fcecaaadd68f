"""Roles follow the organization's kind: what the lists offer, what the actions refuse, how roles
are named on the pages; and what an administrator is told when an invitation replaces another."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from casebridge.access.policy import OrgAccess, resolve
from casebridge.access.roles import Role
from casebridge.accounts import actions as account_actions
from casebridge.accounts.models import ServiceAccount
from casebridge.audit.models import Event
from casebridge.core.testing import Personas, add_member, make_org, make_user, signed_in_client
from casebridge.orgs import actions
from casebridge.orgs.kinds import roles_of_kind
from casebridge.orgs.models import Invitation, Membership, OrgKind

pytestmark = pytest.mark.django_db


def _owner(p: Personas) -> OrgAccess:
    access = resolve(p.members["owner"], p.practice)
    assert access is not None
    return access


def _options(html: str, select_name: str) -> set[str]:
    """The option values of the first <select name=...> on the page."""
    match = re.search(rf'<select name="{select_name}"[^>]*>(.*?)</select>', html, re.S)
    assert match, f"no select named {select_name}"
    return set(re.findall(r'<option value="([^"]*)"', match.group(1)))


def test_each_kind_has_its_own_roles() -> None:
    assert Role.TECHNICIAN not in roles_of_kind(OrgKind.PRACTICE)
    assert Role.LAB_MANAGER not in roles_of_kind(OrgKind.PRACTICE)
    assert Role.CLINICIAN not in roles_of_kind(OrgKind.LAB)
    assert Role.TECHNICIAN in roles_of_kind(OrgKind.LAB) and Role.LAB_MANAGER in roles_of_kind(OrgKind.LAB)
    assert Role.CLINICIAN in roles_of_kind(OrgKind.IMAGING) and Role.TECHNICIAN not in roles_of_kind(OrgKind.IMAGING)
    for kind in OrgKind.values:
        assert {Role.OWNER, Role.ADMIN, Role.COMPLIANCE_OFFICER, Role.AUDITOR} <= set(roles_of_kind(kind))


def test_a_practice_cannot_invite_with_a_lab_role(personas: Personas) -> None:
    for role in (Role.TECHNICIAN, Role.LAB_MANAGER):
        with pytest.raises(ValidationError, match="not a role in a dental practice"):
            actions.invite_member(_owner(personas), email="new@smile.test", role=role)
    assert not Invitation.objects.exists()
    assert not Event.objects.filter(action="org.invitation.sent").exists()


def test_a_lab_cannot_invite_a_clinician(personas: Personas) -> None:
    owner = make_user("owner@lab.test")
    add_member(personas.lab, owner, Role.OWNER)
    lab = resolve(owner, personas.lab)
    assert lab is not None
    with pytest.raises(ValidationError, match="Clinician is not a role in a dental lab"):
        actions.invite_member(lab, email="dr@lab.test", role=Role.CLINICIAN)
    assert not Invitation.objects.exists()
    actions.invite_member(lab, email="tech@lab.test", role=Role.TECHNICIAN)  # its own roles still work


def test_an_imaging_center_has_no_lab_roles(personas: Personas) -> None:
    center = make_org("Clear View Imaging", OrgKind.IMAGING)
    owner = make_user("owner@imaging.test")
    add_member(center, owner, Role.OWNER)
    access = resolve(owner, center)
    assert access is not None
    with pytest.raises(ValidationError, match="not a role in an imaging center"):
        actions.invite_member(access, email="t@imaging.test", role=Role.TECHNICIAN)
    actions.invite_member(access, email="radiologist@imaging.test", role=Role.CLINICIAN)


def test_a_member_of_a_practice_cannot_be_made_a_technician(personas: Personas) -> None:
    staff = Membership.objects.get(user=personas.members["staff"], organization=personas.practice)
    with pytest.raises(ValidationError, match="Technician is not a role"):
        actions.change_role(_owner(personas), staff, Role.TECHNICIAN)
    staff.refresh_from_db()
    assert staff.role == Role.STAFF
    assert not Event.objects.filter(action="org.member.role_changed").exists()


def test_the_role_form_refuses_a_lab_role_with_a_clear_message(personas: Personas) -> None:
    staff = Membership.objects.get(user=personas.members["staff"], organization=personas.practice)
    client = signed_in_client(personas.members["owner"])
    url = reverse("member_update", args=[personas.practice.slug, staff.pk])
    response = client.post(url, {"operation": "role", "role": Role.LAB_MANAGER}, follow=True)
    assert "Lab manager is not a role in a dental practice" in response.content.decode()
    staff.refresh_from_db()
    assert staff.role == Role.STAFF


def test_an_old_invitation_with_a_lab_role_cannot_be_accepted(personas: Personas) -> None:
    raw = actions.invite_member(_owner(personas), email="old@smile.test", role=Role.STAFF).raw
    Invitation.objects.update(role=Role.TECHNICIAN)  # as sent before roles followed the kind
    with pytest.raises(ValidationError, match="ask for a new invitation"):
        actions.accept_invitation(raw, user=make_user("old@smile.test"))
    assert not Membership.objects.filter(user__email="old@smile.test").exists()


def _owner(personas: Personas) -> OrgAccess:
    access = resolve(personas.members["owner"], personas.practice)
    assert access is not None
    return access


def test_a_practice_service_account_cannot_take_a_lab_role(personas: Personas) -> None:
    with pytest.raises(ValidationError, match="Technician is not a role in a dental practice"):
        account_actions.create_service_account(
            _owner(personas), name="scanner", role=Role.TECHNICIAN, scopes=["cases:read"], days=30
        )
    assert not ServiceAccount.objects.exists()


def test_the_pages_offer_only_the_practice_roles(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    practice_roles = {r.value for r in roles_of_kind(OrgKind.PRACTICE)}
    members_page = client.get(reverse("members", args=[personas.practice.slug])).content.decode()
    assert _options(members_page, "role") <= practice_roles | {Role.TECHNICIAN, Role.LAB_MANAGER}
    invite_form = members_page[members_page.index('id="h-invite"') :]
    assert _options(invite_form, "role") == practice_roles
    accounts_page = client.get(reverse("service_accounts", args=[personas.practice.slug])).content.decode()
    assert _options(accounts_page, "role") == practice_roles - {Role.OWNER}


def test_a_member_holding_a_lab_role_from_before_sees_it_named_not_silently_changed(personas: Personas) -> None:
    # The personas fixture gives the practice a technician: rows created before the rule.
    page = signed_in_client(personas.members["owner"]).get(reverse("members", args=[personas.practice.slug]))
    assert "Technician (not a role here: choose another)" in page.content.decode()


def test_the_overview_names_the_role_by_its_label(personas: Personas) -> None:
    officer = personas.members[Role.COMPLIANCE_OFFICER]
    page = signed_in_client(officer).get(reverse("org_home", args=[personas.practice.slug])).content.decode()
    card = page[page.index("<h2>Your role</h2>") :]
    assert card.startswith("<h2>Your role</h2><p>Compliance officer</p>")


def test_the_service_account_list_names_roles_by_their_label(personas: Personas) -> None:
    account_actions.create_service_account(
        _owner(personas), name="pms-sync", role=Role.COMPLIANCE_OFFICER, scopes=["org:read"], days=30
    )
    page = signed_in_client(personas.members["owner"]).get(reverse("service_accounts", args=[personas.practice.slug]))
    assert "<td>Compliance officer</td>" in page.content.decode()


# --- re-inviting an address -----------------------------------------------------------------
def test_reinviting_says_the_earlier_link_was_replaced_and_audits_it(personas: Personas) -> None:
    client = signed_in_client(personas.members["owner"])
    url = reverse("invite", args=[personas.practice.slug])
    first = client.post(url, {"email": "twice@smile.test", "role": Role.STAFF}, follow=True).content.decode()
    assert "was replaced" not in first
    second = client.post(url, {"email": "twice@smile.test", "role": Role.CLINICIAN}, follow=True).content.decode()
    assert "The earlier invitation to this address was replaced; only the new link works." in second
    old, new = Invitation.objects.order_by("created_at")
    assert old.revoked_at is not None and new.is_open
    replaced = Event.objects.get(action="org.invitation.revoked")
    assert replaced.details == {"reason": "replaced", "by": str(new.pk)}
    assert Event.objects.filter(action="org.invitation.sent", details__replaced=1).count() == 1


def test_inviting_someone_else_replaces_nothing(personas: Personas) -> None:
    actions.invite_member(_owner(personas), email="a@smile.test", role=Role.STAFF)
    sent = actions.invite_member(_owner(personas), email="b@smile.test", role=Role.STAFF)
    assert sent.replaced == 0
    assert not Event.objects.filter(action="org.invitation.revoked").exists()
