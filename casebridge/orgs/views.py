"""Organization pages: thin views that parse input, call orgs.actions and render."""

from __future__ import annotations

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from casebridge.access.guards import org_permission, public, signed_in
from casebridge.access.policy import OrgAccess, organizations_of, scoped_get
from casebridge.access.requests import org_access_of, user_of
from casebridge.access.roles import Perm, Role
from casebridge.accounts import actions as account_actions
from casebridge.accounts.models import ServiceAccount
from casebridge.cases.home import work_queue
from casebridge.orgs import actions
from casebridge.orgs.forms import (
    AcceptInvitationForm,
    ConnectionBasisForm,
    ConnectionRequestForm,
    EmergencyGrantForm,
    InviteForm,
    PrescriberForm,
    ProfileForm,
    ReceiptForm,
    RoleForm,
    ServiceAccountForm,
    SettingsForm,
)
from casebridge.orgs.kinds import check_role_fits, role_choices
from casebridge.orgs.models import (
    ConnectionStatus,
    EmergencyAccess,
    Invitation,
    Membership,
    OrgKind,
)
from casebridge.orgs.queries import connections_of


def _access(request: HttpRequest) -> OrgAccess:
    return org_access_of(request)


def _errors(request: HttpRequest, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


@signed_in
def home(request: HttpRequest) -> HttpResponse:
    orgs = list(organizations_of(user_of(request)))
    current = request.session.get("current_org")
    for org in orgs:
        if org.slug == current:
            return redirect("org_home", org.slug)
    if len(orgs) == 1:
        return redirect("org_home", orgs[0].slug)
    return render(request, "orgs/choose.html", {"organizations": orgs})


@org_permission(Perm.ORG_VIEW)
def org_home(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    org = access.organization
    context = {
        "member_count": org.memberships.filter(is_active=True).count(),
        "role_label": Role(access.role).label if access.role in Role.values else "",
        "connections": connections_of(org).exclude(status=ConnectionStatus.ENDED).order_by("-created_at")[:10],
    }
    if access.has(Perm.CASES_VIEW):
        context.update(work_queue(access))
    return render(request, "orgs/home.html", context)


# --- Members ------------------------------------------------------------------------------
@org_permission(Perm.ORG_VIEW)
def members(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    org = access.organization
    form = InviteForm(kind=org.kind)
    return render(
        request,
        "orgs/members.html",
        {
            "memberships": org.memberships.select_related("user").order_by("-is_active", "user__email"),
            "invitations": org.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True)
            .filter(expires_at__gt=timezone.now())
            .order_by("-created_at"),
            "invite_form": form,
            "role_choices": role_choices(org.kind),
            "role_values": {value for value, _label in role_choices(org.kind)},
            "can_manage": access.has(Perm.MEMBERS_MANAGE),
            "prescribers_here": org.kind == OrgKind.PRACTICE,
            "us_states": actions.US_STATES,
        },
    )


@require_POST
@org_permission(Perm.MEMBERS_MANAGE)
def invite(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    form = InviteForm(request.POST, kind=access.organization.kind)
    if form.is_valid():
        try:
            sent = actions.invite_member(access, email=form.cleaned_data["email"], role=form.cleaned_data["role"])
            messages.success(request, "Invitation sent. The link works once and expires in 7 days.")
            if sent.replaced:
                # Otherwise the person clicking the first e-mail meets a dead link and nobody knows why.
                messages.warning(
                    request, "The earlier invitation to this address was replaced; only the new link works."
                )
        except ValidationError as exc:
            _errors(request, exc)
    else:
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
    return redirect("members", access.organization.slug)


@require_POST
@org_permission(Perm.MEMBERS_MANAGE)
def invitation_revoke(request: HttpRequest, invitation_id: str) -> HttpResponse:
    access = _access(request)
    invitation = scoped_get(Invitation.objects.filter(organization=access.organization), pk=invitation_id)
    actions.revoke_invitation(access, invitation)
    messages.success(request, "Invitation revoked.")
    return redirect("members", access.organization.slug)


@require_POST
@org_permission(Perm.MEMBERS_MANAGE)
@reauthentication_required
def member_update(request: HttpRequest, membership_id: str) -> HttpResponse:
    access = _access(request)
    membership = scoped_get(
        Membership.objects.filter(organization=access.organization).select_related("user"),
        pk=membership_id,
    )
    operation = request.POST.get("operation", "")
    try:
        if operation == "role":
            form = RoleForm(request.POST, kind=access.organization.kind)
            if not form.is_valid():
                check_role_fits(access.organization.kind, request.POST.get("role", ""))  # names the roles here
                raise ValidationError("Choose a valid role.")
            actions.change_role(access, membership, form.cleaned_data["role"])
            messages.success(request, f"{membership.user.display_name} is now {Role(membership.role).label}.")
        elif operation == "prescriber":
            prescriber_form = PrescriberForm(request.POST)
            if not prescriber_form.is_valid():
                raise ValidationError("Enter the license number and choose the state that issued it.")
            if actions.set_prescriber(access, membership, **prescriber_form.cleaned_data):
                messages.success(
                    request,
                    f"{membership.user.display_name} can be named as the doctor on cases ({membership.license}).",
                )
            else:
                messages.info(request, "Nothing was changed.")
        elif operation == "not_prescriber":
            actions.remove_prescriber(access, membership)
            messages.success(request, f"{membership.user.display_name} is no longer a prescriber.")
        elif operation == "deactivate":
            actions.deactivate_member(access, membership)
            messages.success(
                request,
                f"{membership.user.display_name} was deactivated and signed out everywhere.",
            )
        elif operation == "reactivate":
            actions.reactivate_member(access, membership)
            messages.success(request, f"{membership.user.display_name} was reactivated.")
        elif operation == "remove":
            actions.remove_member(access, membership)
            messages.success(request, f"{membership.user.display_name} was removed and signed out everywhere.")
        else:
            messages.error(request, "Unknown operation.")
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("members", access.organization.slug)


@public
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = actions.find_invitation(token)
    if invitation is None:
        return render(request, "orgs/invitation_invalid.html", status=404)
    user = request.user if request.user.is_authenticated else None
    existing = user is None and get_user_model().objects.filter(email__iexact=invitation.email).exists()
    form = AcceptInvitationForm(request.POST or None) if user is None else None
    if request.method == "POST":
        try:
            if user is not None:
                actions.accept_invitation(token, user=user)
            elif form is not None and form.is_valid():
                actions.accept_invitation(
                    token,
                    user=None,
                    password=form.cleaned_data["password"],
                    full_name=form.cleaned_data["full_name"],
                )
                messages.success(request, "Your account is ready. Sign in, then set up your second factor.")
                return redirect("account_login")
            else:
                raise ValidationError("")
            messages.success(request, f"You joined {invitation.organization.name}.")
            return redirect("org_home", invitation.organization.slug)
        except ValidationError as exc:
            if form is not None:
                for message in exc.messages:
                    if message:
                        form.add_error("password", message)
            else:
                _errors(request, exc)
    return render(
        request,
        "orgs/invitation_accept.html",
        {"invitation": invitation, "form": form, "existing_account": existing},
    )


# --- Settings -----------------------------------------------------------------------------
@org_permission(Perm.ORG_SETTINGS)
@reauthentication_required(allow_get=True)
def org_settings(request: HttpRequest) -> HttpResponse:
    """Three forms on one page, each posting its own `section`: the practice's profile (address,
    phone), De-identification on receipt and the security settings (automatic logoff, lab access
    grace period)."""
    access = _access(request)
    org = access.organization
    # A post naming no section is the security form, the only one this page used to have.
    section = request.POST.get("section", "settings") if request.method == "POST" else ""
    initial = {
        "idle_timeout_minutes": org.idle_timeout_seconds // 60,
        "lab_access_grace_days": org.lab_access_grace_days,
    }
    form = SettingsForm(request.POST if section == "settings" else None, initial=initial)
    profile_form = ProfileForm(
        request.POST if section == "profile" else None, initial={"address": org.address, "phone": org.phone}
    )
    if section == "settings" and form.is_valid():
        try:
            actions.update_settings(
                access,
                idle_timeout_seconds=form.cleaned_data["idle_timeout_minutes"] * 60,
                lab_access_grace_days=form.cleaned_data["lab_access_grace_days"],
            )
            messages.success(request, "Settings saved.")
            return redirect("org_settings", org.slug)
        except ValidationError as exc:
            _errors(request, exc)
    receipt_form = ReceiptForm(
        request.POST if section == "receipt" else None, initial={"deidentify_on_receipt": org.deidentify_on_receipt}
    )
    if section == "receipt" and receipt_form.is_valid():
        enabled = receipt_form.cleaned_data["deidentify_on_receipt"]
        switched = actions.update_deidentify_on_receipt(access, enabled=enabled)
        messages.success(
            request,
            ("De-identification on receipt is on." if enabled else "De-identification on receipt is off.")
            if switched
            else "Nothing was changed.",
        )
        return redirect("org_settings", org.slug)
    if section == "profile" and profile_form.is_valid():
        try:
            changed = actions.update_profile(
                access, address=profile_form.cleaned_data["address"], phone=profile_form.cleaned_data["phone"]
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    profile_form.add_error(field, error)
        else:
            messages.success(request, "Profile saved." if changed else "Nothing was changed.")
            return redirect("org_settings", org.slug)
    status = 400 if section and (form.errors or profile_form.errors) else 200
    return render(
        request,
        "orgs/settings.html",
        {"form": form, "profile_form": profile_form, "receipt_form": receipt_form, "nav": "settings"},
        status=status,
    )


# --- Connections --------------------------------------------------------------------------
@org_permission(Perm.CONNECTIONS_VIEW)
def connections(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    org = access.organization
    # Its own ids: the agreement forms of the connections above share the field names.
    form = ConnectionRequestForm(auto_id="new_%s")
    rows = connections_of(org).order_by("status", "-created_at")
    return render(
        request,
        "orgs/connections.html",
        {
            "connections": [(c, c.other(org)) for c in rows],
            "form": form,
            "basis_form": ConnectionBasisForm(),
            "can_manage": access.has(Perm.CONNECTIONS_MANAGE),
        },
    )


@require_POST
@org_permission(Perm.CONNECTIONS_MANAGE)
def connection_request(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    form = ConnectionRequestForm(request.POST, auto_id="new_%s")
    if form.is_valid():
        try:
            actions.request_connection(
                access,
                other_slug=form.cleaned_data["other_slug"],
                basis=form.cleaned_data["basis"],
                baa_signed_on=form.cleaned_data["baa_signed_on"],
                baa_expires_on=form.cleaned_data["baa_expires_on"],
                note=form.cleaned_data["note"],
            )
            messages.success(request, "Connection requested. It becomes active when they accept.")
        except ValidationError as exc:
            _errors(request, exc)
    else:
        messages.error(request, "Check the CaseBridge ID and the agreement details.")
    return redirect("connections", access.organization.slug)


@require_POST
@org_permission(Perm.CONNECTIONS_MANAGE)
def connection_update(request: HttpRequest, connection_id: str) -> HttpResponse:
    access = _access(request)
    org = access.organization
    connection = scoped_get(connections_of(org), pk=connection_id)
    operation = request.POST.get("operation", "")
    try:
        if operation == "accept":
            actions.accept_connection(access, connection)
            messages.success(request, "Connection accepted.")
        elif operation == "basis":
            form = ConnectionBasisForm(request.POST)
            if not form.is_valid():
                raise ValidationError("Check the agreement details.")
            actions.change_connection_basis(
                access,
                connection,
                basis=form.cleaned_data["basis"],
                baa_signed_on=form.cleaned_data["baa_signed_on"],
                baa_expires_on=form.cleaned_data["baa_expires_on"],
                note=form.cleaned_data["note"],
            )
            messages.success(request, "Agreement basis recorded.")
        elif operation == "end":
            actions.end_connection(access, connection)
            messages.success(request, "Connection ended.")
        else:
            messages.error(request, "Unknown operation.")
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("connections", org.slug)


# --- Emergency access ---------------------------------------------------------------------
def _member_choices(access: OrgAccess) -> list[tuple[str, str]]:
    return [
        (str(m.pk), f"{m.user.display_name} ({Role(m.role).label})")
        for m in access.organization.memberships.filter(is_active=True).select_related("user").order_by("user__email")
    ]


@org_permission(Perm.EMERGENCY_GRANT)
@reauthentication_required(allow_get=True)
def emergency(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    org = access.organization
    form = EmergencyGrantForm(request.POST or None, members=_member_choices(access))
    if request.method == "POST" and form.is_valid():
        membership = scoped_get(org.memberships.all(), pk=form.cleaned_data["member"])
        try:
            actions.grant_emergency_access(
                access,
                membership,
                reason=form.cleaned_data["reason"],
                hours=form.cleaned_data["hours"],
            )
            messages.success(
                request,
                "Emergency access granted. Administrators and compliance officers were notified.",
            )
            return redirect("emergency", org.slug)
        except ValidationError as exc:
            _errors(request, exc)
    grants = (
        EmergencyAccess.objects.filter(organization=org)
        .select_related("user", "granted_by")
        .order_by("-created_at")[:50]
    )
    return render(request, "orgs/emergency.html", {"form": form, "grants": grants})


@require_POST
@org_permission(Perm.EMERGENCY_GRANT)
def emergency_revoke(request: HttpRequest, grant_id: str) -> HttpResponse:
    access = _access(request)
    grant = scoped_get(EmergencyAccess.objects.filter(organization=access.organization), pk=grant_id)
    actions.revoke_emergency_access(access, grant)
    messages.success(request, "Emergency access ended.")
    return redirect("emergency", access.organization.slug)


# --- Service accounts ---------------------------------------------------------------------
@org_permission(Perm.SERVICE_ACCOUNTS_MANAGE)
@reauthentication_required(allow_get=True)
def service_accounts(request: HttpRequest) -> HttpResponse:
    access = _access(request)
    org = access.organization
    form = ServiceAccountForm(request.POST or None, kind=org.kind)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _account, new_token = account_actions.create_service_account(
                access,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                scopes=form.cleaned_data["scopes"],
                days=form.cleaned_data["days"],
            )
            form = ServiceAccountForm(kind=org.kind)
        except ValidationError as exc:
            _errors(request, exc)
    accounts = [
        (account, Role(account.role).label if account.role in Role.values else account.role)
        for account in ServiceAccount.objects.filter(organization=org).prefetch_related("tokens").order_by("name")
    ]
    return render(
        request,
        "orgs/service_accounts.html",
        {"form": form, "accounts": accounts, "new_token": new_token},
    )


@require_POST
@org_permission(Perm.SERVICE_ACCOUNTS_MANAGE)
def service_account_deactivate(request: HttpRequest, account_id: str) -> HttpResponse:
    access = _access(request)
    account = scoped_get(ServiceAccount.objects.filter(organization=access.organization), pk=account_id)
    account_actions.deactivate_service_account(access, account)
    messages.success(request, f"Service account {account.name} deactivated; its tokens no longer work.")
    return redirect("service_accounts", access.organization.slug)
