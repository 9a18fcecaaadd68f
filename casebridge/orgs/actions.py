"""Organization actions: every change to orgs, members, invitations, connections and emergency
access happens here, in one transaction with its audit event; mail goes out after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import OWNER_ONLY_ROLES, Perm, Role
from casebridge.accounts import actions as account_actions
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.core import secrets as cb_secrets
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.orgs.kinds import check_role_fits
from casebridge.orgs.models import (
    AgreementBasis,
    Connection,
    ConnectionStatus,
    EmergencyAccess,
    Invitation,
    Membership,
    Organization,
    OrgKind,
)

IDLE_MIN_SECONDS = 60
IDLE_MAX_SECONDS = 60 * 60


# --- Organizations ------------------------------------------------------------------------
def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_organization(*, name: str, kind: str, owner: User, actor: Any = None) -> Organization:
    name = name.strip()
    if not name:
        raise ValidationError("An organization needs a name.")
    if kind not in OrgKind.values:
        raise ValidationError(f"Kind must be one of: {', '.join(OrgKind.values)}.")
    with transaction.atomic():
        org = Organization.objects.create(name=name, kind=kind, slug=_unique_slug(name))
        Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
        record("org.created", actor=actor, organization=org, target=org, details={"kind": kind})
    return org


def update_settings(access: OrgAccess, *, idle_timeout_seconds: int, lab_access_grace_days: int) -> None:
    access.require(Perm.ORG_SETTINGS)
    if not IDLE_MIN_SECONDS <= idle_timeout_seconds <= IDLE_MAX_SECONDS:
        raise ValidationError("Automatic logoff must be between 1 and 60 minutes.")
    if not 0 <= lab_access_grace_days <= 365:
        raise ValidationError("The lab access grace period must be between 0 and 365 days.")
    org = access.organization
    changes = {}
    if org.idle_timeout_seconds != idle_timeout_seconds:
        changes["idle_timeout_seconds"] = [org.idle_timeout_seconds, idle_timeout_seconds]
    if org.lab_access_grace_days != lab_access_grace_days:
        changes["lab_access_grace_days"] = [org.lab_access_grace_days, lab_access_grace_days]
    if not changes:
        return
    with transaction.atomic():
        org.idle_timeout_seconds = idle_timeout_seconds
        org.lab_access_grace_days = lab_access_grace_days
        org.save(update_fields=["idle_timeout_seconds", "lab_access_grace_days"])
        record("org.setting.changed", actor=access.actor, organization=org, target=org, details=changes)


def update_deidentify_on_receipt(access: OrgAccess, *, enabled: bool) -> bool:
    """Turn De-identification on receipt on or off (issue 14, item 4); True when it changed.
    The same permission and audit event as the other settings."""
    access.require(Perm.ORG_SETTINGS)
    org = access.organization
    if org.deidentify_on_receipt == enabled:
        return False
    with transaction.atomic():
        changes = {"deidentify_on_receipt": [org.deidentify_on_receipt, enabled]}
        org.deidentify_on_receipt = enabled
        org.save(update_fields=["deidentify_on_receipt"])
        record("org.setting.changed", actor=access.actor, organization=org, target=org, details=changes)
    return True


ADDRESS_MAX_CHARS = 500
PHONE_CHARS = frozenset("0123456789+-() .")
# USPS codes of the states, DC and territories that license dentists.
# fmt: off
US_STATES = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID",
    "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC",
    "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
    "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY", "AS", "GU", "MP", "PR", "VI",
)
# fmt: on


def update_profile(access: OrgAccess, *, address: str, phone: str) -> list[str]:
    """Change the organization's postal address and phone; returns the names of what changed.

    Neither is PHI, so the audit event keeps old and new values: who moved the ship-to address
    (where finished work goes) must be traceable."""
    access.require(Perm.ORG_SETTINGS)
    address = "\n".join(line.strip() for line in address.strip().splitlines() if line.strip())
    phone = " ".join(phone.split())
    errors: dict[str, str] = {}
    if len(address) > ADDRESS_MAX_CHARS:
        errors["address"] = f"Keep the address under {ADDRESS_MAX_CHARS} characters."
    digits = sum(ch.isdigit() for ch in phone)
    if phone and (not set(phone) <= PHONE_CHARS or not 7 <= digits <= 15 or len(phone) > 40):
        errors["phone"] = "Enter a phone number of 7 to 15 digits, e.g. +1 217 555 0100 or (217) 555-0100."
    if errors:
        raise ValidationError(errors)
    org = access.organization
    changes = {name: [getattr(org, name), value] for name, value in (("address", address), ("phone", phone))}
    changes = {name: pair for name, pair in changes.items() if pair[0] != pair[1]}
    if not changes:
        return []
    with transaction.atomic():
        for name, (_old, value) in changes.items():
            setattr(org, name, value)
        org.save(update_fields=list(changes))
        record("org.profile.changed", actor=access.actor, organization=org, target=org, details=changes)
    return sorted(changes)


def set_prescriber(access: OrgAccess, membership: Membership, *, license_number: str, license_state: str) -> bool:
    """Mark a member of a practice as a prescriber (or change their license): from then on they
    can be named as the doctor of a case. Returns False when nothing changed."""
    access.require(Perm.MEMBERS_MANAGE)
    if membership.organization_id != access.organization.pk:
        raise ValidationError("That person is not a member of this organization.")
    if access.organization.kind != OrgKind.PRACTICE:
        raise ValidationError("Prescribers are members of a dental practice.")
    if not membership.is_active:
        raise ValidationError("Reactivate the member before marking them as a prescriber.")
    number = license_number.strip().upper()
    state = license_state.strip().upper()
    errors: dict[str, str] = {}
    if not number or len(number) > 40 or not all((ch.isascii() and ch.isalnum()) or ch in "-./ " for ch in number):
        errors["license_number"] = "Enter the license number as issued (letters, digits, dashes; up to 40)."
    if state not in US_STATES:
        errors["license_state"] = "Choose the state that issued the license."
    if errors:
        raise ValidationError(errors)
    before = membership.license
    if membership.is_prescriber and (membership.license_number, membership.license_state) == (number, state):
        return False
    with transaction.atomic():
        membership.is_prescriber = True
        membership.license_number = number
        membership.license_state = state
        membership.save(update_fields=["is_prescriber", "license_number", "license_state"])
        record(
            "org.member.prescriber_set",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id), "from": before, "to": membership.license},
        )
    return True


def remove_prescriber(access: OrgAccess, membership: Membership) -> None:
    """The member can no longer be chosen as a doctor; cases already sent keep their signature."""
    access.require(Perm.MEMBERS_MANAGE)
    if membership.organization_id != access.organization.pk:
        raise ValidationError("That person is not a member of this organization.")
    if not membership.is_prescriber:
        return
    with transaction.atomic():
        old = membership.license
        membership.is_prescriber = False
        membership.license_number = ""
        membership.license_state = ""
        membership.save(update_fields=["is_prescriber", "license_number", "license_state"])
        record(
            "org.member.prescriber_removed",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id), "license": old},
        )


# --- Invitations --------------------------------------------------------------------------
def _check_can_assign(access: OrgAccess, role: str) -> None:
    check_role_fits(access.organization.kind, role)
    if role in OWNER_ONLY_ROLES and access.role != Role.OWNER:
        raise ValidationError("Only an owner can make someone an owner.")


@dataclass(frozen=True)
class SentInvitation:
    invitation: Invitation
    raw: str  # the secret of the link, e-mailed once and never stored
    # Open invitations to the same address that this one replaced: their links stopped working.
    replaced: int


def invite_member(access: OrgAccess, *, email: str, role: str) -> SentInvitation:
    """Invite ``email`` with ``role``. One open invitation per address: a new one revokes the
    earlier links (each revocation audited), so only the latest role offered can be accepted."""
    access.require(Perm.MEMBERS_MANAGE)
    _check_can_assign(access, role)
    email = email.strip().lower()
    if not email or "@" not in email:
        raise ValidationError("Enter the e-mail address of the person to invite.")
    org = access.organization
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise ValidationError("That person is already a member of this organization.")
    raw, digest = cb_secrets.new_secret()
    with transaction.atomic():
        earlier = list(
            Invitation.objects.select_for_update().filter(
                organization=org, email=email, accepted_at__isnull=True, revoked_at__isnull=True
            )
        )
        invitation = Invitation.objects.create(
            organization=org,
            email=email,
            role=role,
            invited_by=access.actor if isinstance(access.actor, User) else None,
            digest=digest,
            expires_at=timezone.now() + timedelta(seconds=settings.INVITATION_TTL_SECONDS),
        )
        replaced = 0
        for old in earlier:
            old.revoked_at = timezone.now()
            old.save(update_fields=["revoked_at"])
            replaced += 1 if old.expires_at > old.revoked_at else 0  # an expired link was dead already
            record(
                "org.invitation.revoked",
                actor=access.actor,
                organization=org,
                target=old,
                details={"reason": "replaced", "by": str(invitation.pk)},
            )
        record(
            "org.invitation.sent",
            actor=access.actor,
            organization=org,
            target=invitation,
            details={"role": role, "replaced": replaced},
        )
        queue_mail(
            [email],
            "invitation",
            {
                "organization": org.name,
                "inviter": getattr(access.actor, "display_name", "An administrator"),
                "role": Role(role).label,
                "link": absolute_url(reverse("invitation_accept", args=[raw])),
                "expires_at": invitation.expires_at,
            },
        )
    return SentInvitation(invitation, raw, replaced)


def revoke_invitation(access: OrgAccess, invitation: Invitation) -> None:
    access.require(Perm.MEMBERS_MANAGE)
    if not invitation.is_open:
        return
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        record(
            "org.invitation.revoked",
            actor=access.actor,
            organization=invitation.organization_id,
            target=invitation,
        )


def find_invitation(raw: str) -> Invitation | None:
    invitation = Invitation.objects.select_related("organization").filter(digest=cb_secrets.digest(raw)).first()
    return invitation if invitation is not None and invitation.is_open else None


def accept_invitation(raw: str, *, user: User | None, password: str = "", full_name: str = "") -> Membership:
    """Join the organization: an existing signed-in user, or a new person setting a password."""
    with transaction.atomic():
        found = find_invitation(raw)
        if found is None:
            raise ValidationError("This invitation is invalid, already used, revoked or expired.")
        invitation = Invitation.objects.select_for_update().get(pk=found.pk)
        if not invitation.is_open:
            raise ValidationError("This invitation is invalid, already used, revoked or expired.")
        # Sent before roles were limited to the organization's kind (a lab role in a practice):
        # joining with it would give permissions that make no sense there.
        try:
            check_role_fits(invitation.organization.kind, invitation.role)
        except ValidationError:
            raise ValidationError(
                "This invitation offers a role this organization does not have; ask for a new invitation."
            ) from None
        if user is None:
            if User.objects.filter(email__iexact=invitation.email).exists():
                raise ValidationError("An account with this e-mail exists: sign in first, then open the link again.")
            user = User(email=invitation.email, full_name=full_name.strip())
            from django.contrib.auth.password_validation import validate_password

            validate_password(password, user)
            user.set_password(password)
            user.save()
            record("auth.password.set", actor=user, target=user)
        elif user.email.lower() != invitation.email.lower():
            raise ValidationError("This invitation was sent to another e-mail address.")
        membership, created = Membership.objects.get_or_create(
            organization=invitation.organization, user=user, defaults={"role": invitation.role}
        )
        if not created:
            if membership.is_active:
                raise ValidationError("You are already a member of this organization.")
            raise ValidationError("Your membership here was deactivated; ask an administrator.")
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at"])
        record(
            "org.invitation.accepted",
            actor=user,
            organization=invitation.organization,
            target=invitation,
            details={"role": invitation.role},
        )
    return membership


# --- Members ------------------------------------------------------------------------------
def _active_owner_count(org: Organization) -> int:
    return Membership.objects.filter(organization=org, role=Role.OWNER, is_active=True).count()


def _guard_owner(access: OrgAccess, membership: Membership) -> None:
    if membership.role == Role.OWNER:
        if access.role != Role.OWNER:
            raise ValidationError("Only an owner can change another owner.")
        if membership.is_active and _active_owner_count(access.organization) <= 1:
            raise ValidationError("An organization needs at least one active owner.")


def change_role(access: OrgAccess, membership: Membership, role: str) -> None:
    access.require(Perm.MEMBERS_MANAGE)
    _check_can_assign(access, role)
    if membership.role == role:
        return
    _guard_owner(access, membership)
    with transaction.atomic():
        old = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record(
            "org.member.role_changed",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id), "from": old, "to": role},
        )


def _cut_off(access: OrgAccess, membership: Membership, reason: str) -> None:
    """Sessions, the member's tokens and emergency grants for this organization end now, not at
    their next login; each ended grant gets its event, as when an administrator revokes it."""
    account_actions.end_sessions(membership.user, actor=access.actor, reason=reason)
    account_actions.revoke_tokens_of(access, membership.user)
    grants = EmergencyAccess.objects.select_for_update().filter(
        organization=access.organization, user=membership.user, ended_at__isnull=True
    )
    for grant in grants:
        grant.ended_at = timezone.now()
        grant.save(update_fields=["ended_at"])
        record(
            "breakglass.revoked",
            actor=access.actor,
            organization=access.organization,
            target=grant,
            details={"user": str(membership.user_id), "reason": reason},
        )


def deactivate_member(access: OrgAccess, membership: Membership) -> None:
    access.require(Perm.MEMBERS_MANAGE)
    if membership.user_id == access.actor.pk:
        raise ValidationError("You cannot deactivate yourself.")
    if not membership.is_active:
        return
    _guard_owner(access, membership)
    with transaction.atomic():
        membership.is_active = False
        membership.save(update_fields=["is_active"])
        record(
            "org.member.deactivated",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id)},
        )
        _cut_off(access, membership, "member deactivated")


def reactivate_member(access: OrgAccess, membership: Membership) -> None:
    access.require(Perm.MEMBERS_MANAGE)
    if membership.is_active:
        return
    with transaction.atomic():
        membership.is_active = True
        membership.save(update_fields=["is_active"])
        record(
            "org.member.reactivated",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id)},
        )


def remove_member(access: OrgAccess, membership: Membership) -> None:
    access.require(Perm.MEMBERS_MANAGE)
    if membership.user_id == access.actor.pk:
        raise ValidationError("You cannot remove yourself.")
    _guard_owner(access, membership)
    with transaction.atomic():
        record(
            "org.member.removed",
            actor=access.actor,
            organization=access.organization,
            target=membership,
            details={"user": str(membership.user_id), "role": membership.role},
        )
        _cut_off(access, membership, "member removed")
        membership.delete()


# --- Connections --------------------------------------------------------------------------
def _validate_basis(basis: str, baa_signed_on: date | None, baa_expires_on: date | None = None) -> None:
    if baa_expires_on is not None and baa_signed_on is not None and baa_expires_on <= baa_signed_on:
        raise ValidationError("The agreement must end after it was signed.")
    if basis not in AgreementBasis.values:
        raise ValidationError(f"Agreement basis must be one of: {', '.join(AgreementBasis.values)}.")
    if basis == AgreementBasis.BAA and baa_signed_on is None:
        raise ValidationError("Enter the date the business associate agreement was signed.")
    if baa_signed_on is not None and baa_signed_on > timezone.now().date():
        raise ValidationError("The signing date cannot be in the future.")


def request_connection(
    access: OrgAccess,
    *,
    other_slug: str,
    basis: str,
    baa_signed_on: date | None = None,
    note: str = "",
    baa_expires_on: date | None = None,
) -> Connection:
    access.require(Perm.CONNECTIONS_MANAGE)
    _validate_basis(basis, baa_signed_on, baa_expires_on)
    org = access.organization
    other = Organization.objects.filter(slug=other_slug.strip().lower()).first()
    if other is None or other.pk == org.pk:
        raise ValidationError("No organization has that CaseBridge ID. Ask them for it on their Connections page.")
    # Any two organizations may connect: practice-lab is the common case, but referrals between
    # practices and labs outsourcing to other labs (sub-business associates) are real too.
    if (
        Connection.objects.filter(requester=org, recipient=other).exists()
        or Connection.objects.filter(requester=other, recipient=org).exists()
    ):
        raise ValidationError("You are already connected (or a request is pending) with that organization.")
    try:
        with transaction.atomic():
            connection = Connection.objects.create(
                requester=org,
                recipient=other,
                basis=basis,
                baa_signed_on=baa_signed_on if basis == AgreementBasis.BAA else None,
                baa_expires_on=baa_expires_on if basis == AgreementBasis.BAA else None,
                basis_note=note.strip(),
                requested_by=access.actor if isinstance(access.actor, User) else None,
            )
            record(
                "org.connection.requested",
                actor=access.actor,
                organization=org,
                target=connection,
                details={"with": str(other.pk), "basis": basis},
            )
    except IntegrityError:
        raise ValidationError("You are already connected with that organization.") from None
    admins = list(
        Membership.objects.filter(
            organization=other, is_active=True, role__in=[Role.OWNER, Role.ADMIN, Role.LAB_MANAGER]
        ).values_list("user__email", flat=True)
    )
    queue_mail(
        admins,
        "connection_requested",
        {"organization": org.name, "link": absolute_url(reverse("connections", args=[other.slug]))},
    )
    return connection


def accept_connection(access: OrgAccess, connection: Connection) -> None:
    access.require(Perm.CONNECTIONS_MANAGE)
    if connection.recipient_id != access.organization.pk:
        raise ValidationError("Only the invited organization can accept a connection.")
    if connection.status != ConnectionStatus.PENDING:
        raise ValidationError("This connection is not awaiting acceptance.")
    with transaction.atomic():
        connection.status = ConnectionStatus.ACTIVE
        connection.accepted_at = timezone.now()
        connection.save(update_fields=["status", "accepted_at"])
        record(
            "org.connection.accepted",
            actor=access.actor,
            organization=access.organization,
            target=connection,
        )


def change_connection_basis(
    access: OrgAccess,
    connection: Connection,
    *,
    basis: str,
    baa_signed_on: date | None,
    note: str = "",
    baa_expires_on: date | None = None,
) -> None:
    access.require(Perm.CONNECTIONS_MANAGE)
    _validate_basis(basis, baa_signed_on, baa_expires_on)
    if connection.status == ConnectionStatus.ENDED:
        raise ValidationError("This connection has ended; request a new one.")
    with transaction.atomic():
        old = {
            "basis": connection.basis,
            "baa_signed_on": str(connection.baa_signed_on or ""),
            "baa_expires_on": str(connection.baa_expires_on or ""),
        }
        connection.basis = basis
        connection.baa_signed_on = baa_signed_on if basis == AgreementBasis.BAA else None
        connection.baa_expires_on = baa_expires_on if basis == AgreementBasis.BAA else None
        connection.baa_expiry_notified_on = None  # a renewed agreement is watched afresh
        connection.basis_note = note.strip()
        connection.save(
            update_fields=["basis", "baa_signed_on", "baa_expires_on", "baa_expiry_notified_on", "basis_note"]
        )
        record(
            "org.connection.changed",
            actor=access.actor,
            organization=access.organization,
            target=connection,
            details={
                "from": old,
                "to": {
                    "basis": basis,
                    "baa_signed_on": str(connection.baa_signed_on or ""),
                    "baa_expires_on": str(connection.baa_expires_on or ""),
                },
            },
        )


def end_connection(access: OrgAccess, connection: Connection) -> None:
    access.require(Perm.CONNECTIONS_MANAGE)
    if connection.status == ConnectionStatus.ENDED:
        return
    with transaction.atomic():
        connection.status = ConnectionStatus.ENDED
        connection.ended_at = timezone.now()
        connection.save(update_fields=["status", "ended_at"])
        record(
            "org.connection.ended",
            actor=access.actor,
            organization=access.organization,
            target=connection,
        )


# --- Emergency access ---------------------------------------------------------------------
def grant_emergency_access(access: OrgAccess, membership: Membership, *, reason: str, hours: int) -> EmergencyAccess:
    access.require(Perm.EMERGENCY_GRANT)
    reason = reason.strip()
    if len(reason) < 20:
        raise ValidationError("Write the reason for emergency access (at least 20 characters).")
    if not 1 <= hours <= settings.EMERGENCY_ACCESS_MAX_HOURS:
        raise ValidationError(f"Emergency access lasts between 1 and {settings.EMERGENCY_ACCESS_MAX_HOURS} hours.")
    if not membership.is_active or membership.organization_id != access.organization.pk:
        raise ValidationError("Emergency access can only be granted to an active member.")
    org = access.organization
    with transaction.atomic():
        grant = EmergencyAccess.objects.create(
            organization=org,
            user=membership.user,
            granted_by=access.actor if isinstance(access.actor, User) else None,
            reason=reason,
            expires_at=timezone.now() + timedelta(hours=hours),
        )
        record(
            "breakglass.granted",
            actor=access.actor,
            organization=org,
            target=grant,
            details={"user": str(membership.user_id), "hours": hours, "reason": reason},
        )
        watchers = list(
            Membership.objects.filter(
                organization=org,
                is_active=True,
                role__in=[Role.OWNER, Role.ADMIN, Role.COMPLIANCE_OFFICER],
            ).values_list("user__email", flat=True)
        )
        queue_mail(
            watchers,
            "emergency_access",
            {
                "organization": org.name,
                "member": membership.user.display_name,
                "granted_by": getattr(access.actor, "display_name", "system"),
                "expires_at": grant.expires_at,
                "link": absolute_url(reverse("audit_log", args=[org.slug]) + "?action=breakglass"),
            },
        )
    return grant


def revoke_emergency_access(access: OrgAccess, grant: EmergencyAccess) -> None:
    access.require(Perm.EMERGENCY_GRANT)
    if not grant.is_active:
        return
    with transaction.atomic():
        grant.ended_at = timezone.now()
        grant.save(update_fields=["ended_at"])
        record("breakglass.revoked", actor=access.actor, organization=access.organization, target=grant)


def record_expired_emergency_grants() -> int:
    """Write one `breakglass.expired` event per grant that ran out (the grant stops working by
    itself at expiry: the policy compares times; this only makes the end visible in the log)."""
    count = 0
    for grant in EmergencyAccess.objects.filter(expiry_recorded=False, expires_at__lte=timezone.now()):
        with transaction.atomic():
            updated = EmergencyAccess.objects.filter(pk=grant.pk, expiry_recorded=False).update(expiry_recorded=True)
            if updated and grant.ended_at is None:
                record(
                    "breakglass.expired",
                    organization=grant.organization_id,
                    target=grant,
                    details={"user": str(grant.user_id)},
                )
                count += 1
    return count
