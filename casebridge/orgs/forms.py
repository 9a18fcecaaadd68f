"""Forms for organization pages: they parse input; the actions decide."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.access.roles import Role
from casebridge.accounts.models import TokenScope
from casebridge.orgs.actions import US_STATES
from casebridge.orgs.kinds import role_choices
from casebridge.orgs.models import AgreementBasis


def _offer_roles_of(form: forms.Form, kind: str, *, exclude: frozenset[str] = frozenset()) -> None:
    """Offer only the roles of the organization's kind (orgs.kinds); the actions enforce it too."""
    field = form.fields["role"]
    assert isinstance(field, forms.ChoiceField)
    field.choices = role_choices(kind, exclude=exclude)


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail address", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(label="Role", initial=Role.STAFF)

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer_roles_of(self, kind)


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer_roles_of(self, kind)


class SettingsForm(forms.Form):
    idle_timeout_minutes = forms.IntegerField(
        label="Automatic logoff after (minutes without activity)", min_value=1, max_value=60
    )
    lab_access_grace_days = forms.IntegerField(
        label="Labs keep access to a completed case for (days)", min_value=0, max_value=365
    )


class ReceiptForm(forms.Form):
    deidentify_on_receipt = forms.BooleanField(
        label="De-identify the files of cases we receive",
        required=False,
        help_text=(
            "Your members then see and download de-identified copies of the files of cases another "
            "organization sends you (DICOM by the Basic Profile of DICOM PS3.15 Annex E; photos, scans "
            "and PDFs without their metadata). The sender's originals stay untouched."
        ),
    )


class ProfileForm(forms.Form):
    address = forms.CharField(
        label="Postal address",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "street-address"}),
        help_text="Street, city, state and ZIP code. New cases ship here unless you enter another address.",
    )
    phone = forms.CharField(
        label="Phone",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
        help_text="Printed on lab slips and given in e-mails to patients so they can check a shared link with you.",
    )


class PrescriberForm(forms.Form):
    license_state = forms.ChoiceField(label="Licensing state")
    license_number = forms.CharField(label="License number", max_length=40)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["license_state"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose…")] + [(code, code) for code in US_STATES]


class ConnectionRequestForm(forms.Form):
    other_slug = forms.SlugField(label="Their CaseBridge ID", help_text="Shown on their Connections page.")
    basis = forms.ChoiceField(label="Agreement basis", choices=AgreementBasis.choices, initial=AgreementBasis.BAA)
    baa_signed_on = forms.DateField(
        label="BAA signed on", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    baa_expires_on = forms.DateField(
        label="BAA ends on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. After it, no patient data travels until the renewal is recorded.",
    )
    note = forms.CharField(label="Note", required=False, max_length=500)


class ConnectionBasisForm(forms.Form):
    basis = forms.ChoiceField(label="Agreement basis", choices=AgreementBasis.choices)
    baa_signed_on = forms.DateField(
        label="BAA signed on", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    baa_expires_on = forms.DateField(
        label="BAA ends on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Optional. After it, no patient data travels until the renewal is recorded.",
    )
    note = forms.CharField(label="Note", required=False, max_length=500)


class EmergencyGrantForm(forms.Form):
    member = forms.ChoiceField(label="Member")

    def __init__(self, *args: Any, members: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["member"].choices = members  # type: ignore[attr-defined]

    hours = forms.IntegerField(label="Duration (hours)", min_value=1, max_value=24, initial=4)
    reason = forms.CharField(
        label="Reason (required, recorded in the audit log)",
        widget=forms.Textarea(attrs={"rows": 3}),
        min_length=20,
    )


class ServiceAccountForm(forms.Form):
    name = forms.SlugField(label="Name", max_length=80, help_text="Lower-case letters, digits and dashes.")
    role = forms.ChoiceField(label="Role")
    scopes = forms.MultipleChoiceField(label="Scopes", choices=TokenScope.choices, widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(label="Token valid for (days)", min_value=1, max_value=365, initial=90)

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer_roles_of(self, kind, exclude=frozenset({Role.OWNER}))  # an integration never owns


class AcceptInvitationForm(forms.Form):
    full_name = forms.CharField(label="Your full name", max_length=150)
    password = forms.CharField(
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 12 characters. A passphrase of several words is easiest to remember.",
    )
