"""Roles and the explicit permission set of each: the vocabulary of the access policy."""

from __future__ import annotations

from django.db import models


class Perm(models.TextChoices):
    ORG_VIEW = "org.view", "See the organization and its members"
    ORG_SETTINGS = "org.settings", "Change organization settings"
    MEMBERS_MANAGE = "members.manage", "Invite, remove and change roles of members"
    CONNECTIONS_VIEW = "connections.view", "See connections to other organizations"
    CONNECTIONS_MANAGE = "connections.manage", "Create connections and record agreements"
    SERVICE_ACCOUNTS_MANAGE = "service_accounts.manage", "Create service accounts and their tokens"
    EMERGENCY_GRANT = "emergency.grant", "Grant emergency access"
    AUDIT_VIEW = "audit.view", "Read the audit log"
    COMPLIANCE_MANAGE = "compliance.manage", "Manage BAAs, risk, training and incidents"
    CASES_VIEW = "cases.view", "See the organization's cases and their files"
    CASES_EDIT = "cases.edit", "Create, edit and submit cases"
    CASES_WORK = "cases.work", "Confirm receipt, update status and deliver (lab side)"
    FILES_UPLOAD = "files.upload", "Upload files (scans, images, documents)"
    FILES_DESTROY = "files.destroy", "Destroy files beyond recovery"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Administrator"
    CLINICIAN = "clinician", "Clinician"
    STAFF = "staff", "Staff"
    TECHNICIAN = "technician", "Technician"
    LAB_MANAGER = "lab_manager", "Lab manager"
    COMPLIANCE_OFFICER = "compliance_officer", "Compliance officer"
    AUDITOR = "auditor", "Auditor (read-only audit access)"


ALL = frozenset(Perm)

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.OWNER: ALL,
    Role.ADMIN: ALL,
    Role.CLINICIAN: frozenset(
        {Perm.ORG_VIEW, Perm.CONNECTIONS_VIEW, Perm.CASES_VIEW, Perm.CASES_EDIT, Perm.FILES_UPLOAD}
    ),
    Role.STAFF: frozenset({Perm.ORG_VIEW, Perm.CASES_VIEW, Perm.CASES_EDIT, Perm.FILES_UPLOAD}),
    Role.TECHNICIAN: frozenset({Perm.ORG_VIEW, Perm.CASES_VIEW, Perm.CASES_WORK, Perm.FILES_UPLOAD}),
    Role.LAB_MANAGER: frozenset(
        {
            Perm.ORG_VIEW,
            Perm.CONNECTIONS_VIEW,
            Perm.CONNECTIONS_MANAGE,
            Perm.CASES_VIEW,
            Perm.CASES_WORK,
            Perm.FILES_UPLOAD,
        }
    ),
    Role.COMPLIANCE_OFFICER: frozenset({Perm.ORG_VIEW, Perm.CONNECTIONS_VIEW, Perm.AUDIT_VIEW, Perm.COMPLIANCE_MANAGE}),
    Role.AUDITOR: frozenset({Perm.ORG_VIEW, Perm.AUDIT_VIEW}),
}

# Roles that only an owner may hand out, so an admin cannot lock the owner out.
OWNER_ONLY_ROLES = frozenset({Role.OWNER})

# What an emergency-access grant adds for its duration: everything a clinician, lab manager and
# compliance officer may do with patient data, but not membership or organization management.
EMERGENCY_PERMISSIONS = frozenset(
    {
        Perm.ORG_VIEW,
        Perm.CONNECTIONS_VIEW,
        Perm.CASES_VIEW,
        Perm.CASES_EDIT,
        Perm.CASES_WORK,
        Perm.FILES_UPLOAD,
        Perm.AUDIT_VIEW,
    }
)

# What opens patient data: withheld from a new member until their onboarding training is passed,
# when the organization requires it (compliance/training.py, policy.resolve).
PATIENT_DATA_PERMISSIONS = frozenset(
    {Perm.CASES_VIEW, Perm.CASES_EDIT, Perm.CASES_WORK, Perm.FILES_UPLOAD, Perm.FILES_DESTROY}
)

# Which token scope unlocks a permission over the API. Permissions without a scope are never
# available to tokens: managing people and access always needs a person with MFA.
SCOPE_FOR_PERM: dict[Perm, str] = {
    Perm.ORG_VIEW: "org:read",
    Perm.CONNECTIONS_VIEW: "org:read",
    Perm.AUDIT_VIEW: "audit:read",
    Perm.CASES_VIEW: "cases:read",
    Perm.CASES_EDIT: "cases:write",
    Perm.CASES_WORK: "cases:write",
    Perm.FILES_UPLOAD: "cases:write",
}


def permissions_for(role: str) -> frozenset[Perm]:
    return ROLE_PERMISSIONS.get(role, frozenset())
