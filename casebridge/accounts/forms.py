"""Forms for the person's own account pages."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.accounts.models import Notation, TokenScope


class SetPasswordForm(forms.Form):
    password = forms.CharField(
        label="Choose a password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}),
        help_text="At least 12 characters. A passphrase of several words is easiest to remember.",
    )


class ApiTokenForm(forms.Form):
    organization = forms.ChoiceField(label="Organization")

    def __init__(self, *args: Any, organizations: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].choices = organizations  # type: ignore[attr-defined]

    name = forms.CharField(label="Name", max_length=80, help_text="What will use it, e.g. 'lab scanner sync'.")
    scopes = forms.MultipleChoiceField(label="Scopes", choices=TokenScope.choices, widget=forms.CheckboxSelectMultiple)
    days = forms.IntegerField(label="Valid for (days)", min_value=1, max_value=365, initial=30)


class NotationForm(forms.Form):
    """The tooth numbering alone, switched on the case form without leaving it."""

    tooth_notation = forms.ChoiceField(label="Tooth numbering", choices=Notation.choices)


class PreferencesForm(forms.Form):
    full_name = forms.CharField(label="Full name", max_length=150, required=False)
    tooth_notation = forms.ChoiceField(label="Tooth numbering", choices=Notation.choices)
    # E-mails carry the case number, the event and a link: never patient details.
    notify_new_cases = forms.BooleanField(label="E-mail me about new cases", required=False)
    notify_status = forms.BooleanField(label="E-mail me about status changes", required=False)
    notify_messages = forms.BooleanField(label="E-mail me about messages and questions", required=False)
    notify_designs = forms.BooleanField(label="E-mail me about design approvals", required=False)
