"""Members: invitations, roles, deactivation and removal, each audited and least-privilege."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from casebridge.access.policy import resolve
from casebridge.access.roles import Role
from casebridge.accounts.models import User
from casebridge.audit.models import Event
from casebridge.core.testing import PASSWORD, Personas, make_user, signed_in_client
from casebridge.orgs import actions
from casebridge.orgs.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def _owner_access(p: Personas):
    return resolve(p.members["owner"], p.practice)


def test_invitation_mail_has_a_single_use_link_and_no_patient_data(
    personas: Personas, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sent = actions.invite_member(_owner_access(personas), email="New.Person@Smile.test", role="staff")
        invitation, raw = sent.invitation, sent.raw
    assert invitation.email == "new.person@smile.test"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["new.person@smile.test"]
    assert f"/invitations/{raw}/" in message.body
    assert "Smile Dental" in message.subject
    assert Invitation.objects.get().digest != raw  # only a digest is stored
    assert Event.objects.filter(action="org.invitation.sent", organization_id=personas.practice.pk).exists()


def test_accepting_an_invitation_creates_the_account_and_membership(personas: Personas) -> None:
    raw = actions.invite_member(_owner_access(personas), email="tech@smile.test", role="clinician").raw
    response = Client().post(reverse("invitation_accept", args=[raw]), {"full_name": "Dr. New", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("account_login")
    user = User.objects.get(email="tech@smile.test")
    assert user.check_password(PASSWORD)
    assert Membership.objects.get(user=user).role == "clinician"
    assert Event.objects.filter(action="org.invitation.accepted").exists()


def test_an_invitation_link_works_only_once(personas: Personas) -> None:
    raw = actions.invite_member(_owner_access(personas), email="once@smile.test", role="staff").raw
    actions.accept_invitation(raw, user=None, password=PASSWORD, full_name="Once")
    with pytest.raises(ValidationError):
        actions.accept_invitation(raw, user=None, password=PASSWORD, full_name="Twice")
    assert User.objects.filter(email="once@smile.test").count() == 1


def test_an_expired_invitation_is_refused(personas: Personas, settings) -> None:
    settings.INVITATION_TTL_SECONDS = -1
    raw = actions.invite_member(_owner_access(personas), email="late@smile.test", role="staff").raw
    response = Client().get(reverse("invitation_accept", args=[raw]))
    assert response.status_code == 404
    with pytest.raises(ValidationError):
        actions.accept_invitation(raw, user=None, password=PASSWORD)
    assert not User.objects.filter(email="late@smile.test").exists()


def test_a_revoked_invitation_is_refused(personas: Personas) -> None:
    sent = actions.invite_member(_owner_access(personas), email="nope@smile.test", role="staff")
    invitation, raw = sent.invitation, sent.raw
    actions.revoke_invitation(_owner_access(personas), invitation)
    with pytest.raises(ValidationError):
        actions.accept_invitation(raw, user=None, password=PASSWORD)


def test_a_weak_password_is_refused_and_nothing_is_created(personas: Personas) -> None:
    raw = actions.invite_member(_owner_access(personas), email="weak@smile.test", role="staff").raw
    for weak in ("short", "password1234", "weak@smile.test"):
        with pytest.raises(ValidationError):
            actions.accept_invitation(raw, user=None, password=weak)
    assert not User.objects.filter(email="weak@smile.test").exists()
    assert actions.find_invitation(raw) is not None  # still usable with a good password


def test_an_existing_user_joins_a_second_organization(personas: Personas) -> None:
    lab_access = resolve(personas.lab_manager, personas.lab)
    # Lab managers cannot invite: only owners and admins manage members.
    with pytest.raises(Exception, match="role does not allow"):
        actions.invite_member(lab_access, email="staff@smile.test", role="technician")
    owner = make_user("owner@lab.test")
    Membership.objects.create(organization=personas.lab, user=owner, role=Role.OWNER)
    raw = actions.invite_member(resolve(owner, personas.lab), email="staff@smile.test", role="technician").raw
    member = personas.members["staff"]
    actions.accept_invitation(raw, user=member)
    assert {m.organization.slug for m in member.memberships.all()} == {"smile-dental", "precision-lab"}


def test_only_an_owner_can_make_an_owner(personas: Personas) -> None:
    admin_access = resolve(personas.members["admin"], personas.practice)
    staff = Membership.objects.get(user=personas.members["staff"])
    with pytest.raises(ValidationError, match="Only an owner"):
        actions.change_role(admin_access, staff, "owner")
    actions.change_role(_owner_access(personas), staff, "owner")
    staff.refresh_from_db()
    assert staff.role == "owner"


def test_the_last_owner_cannot_be_demoted_and_admins_cannot_touch_owners(personas: Personas) -> None:
    owner = Membership.objects.get(user=personas.members["owner"])
    with pytest.raises(ValidationError, match="at least one active owner"):
        actions.change_role(_owner_access(personas), owner, "staff")
    with pytest.raises(ValidationError, match="Only an owner"):
        actions.remove_member(resolve(personas.members["admin"], personas.practice), owner)
    owner.refresh_from_db()
    assert owner.role == "owner" and owner.is_active


def test_role_changes_are_audited_with_old_and_new_role(personas: Personas) -> None:
    staff = Membership.objects.get(user=personas.members["staff"])
    actions.change_role(_owner_access(personas), staff, "clinician")
    event = Event.objects.get(action="org.member.role_changed")
    assert event.details == {"user": str(staff.user_id), "from": "staff", "to": "clinician"}
    assert event.actor_id == str(personas.members["owner"].pk)


def test_deactivating_a_member_refuses_their_very_next_request(personas: Personas) -> None:
    clinician = personas.members["clinician"]
    victim = signed_in_client(clinician)
    assert victim.get(reverse("org_home", args=[personas.practice.slug])).status_code == 200
    admin = signed_in_client(personas.members["owner"])
    membership = Membership.objects.get(user=clinician)
    response = admin.post(
        reverse("member_update", args=[personas.practice.slug, membership.pk]), {"operation": "deactivate"}
    )
    assert response.status_code == 302
    # The very next request of the deactivated member: their session is gone.
    after = victim.get(reverse("org_home", args=[personas.practice.slug]))
    assert after.status_code == 302 and "/accounts/login/" in after["Location"]
    assert Event.objects.filter(action="org.member.deactivated").exists()
    assert Event.objects.filter(action="auth.session.revoked", target_id=str(clinician.pk)).exists()


def test_removing_a_member_ends_sessions_and_tokens(personas: Personas) -> None:
    from casebridge.accounts.actions import create_api_token

    staff = personas.members["staff"]
    _token, raw = create_api_token(
        organization=personas.practice, name="sync", scopes=["org:read"], days=1, actor=staff, user=staff
    )
    victim = signed_in_client(staff)
    victim.get(reverse("home"))
    actions.remove_member(_owner_access(personas), Membership.objects.get(user=staff))
    assert victim.get(reverse("org_home", args=[personas.practice.slug])).status_code == 302
    api = Client()
    assert api.get(reverse("api_me"), HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    assert not Membership.objects.filter(user=staff).exists()


def test_members_cannot_deactivate_themselves(personas: Personas) -> None:
    with pytest.raises(ValidationError):
        actions.deactivate_member(_owner_access(personas), Membership.objects.get(user=personas.members["owner"]))


def test_settings_are_validated_and_audited(personas: Personas) -> None:
    access = _owner_access(personas)
    with pytest.raises(ValidationError):
        actions.update_settings(access, idle_timeout_seconds=10, lab_access_grace_days=30)
    personas.practice.refresh_from_db()
    assert personas.practice.idle_timeout_seconds == 900
    actions.update_settings(access, idle_timeout_seconds=600, lab_access_grace_days=14)
    event = Event.objects.get(action="org.setting.changed")
    assert event.details["idle_timeout_seconds"] == [900, 600]
