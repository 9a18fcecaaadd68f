"""Forms for the practice's sharing pages: they parse input; sharing.actions decides."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.sharing import actions


class ShareForm(forms.Form):
    shared_files = forms.MultipleChoiceField(label="Files to share", widget=forms.CheckboxSelectMultiple)
    recipient_email = forms.EmailField(
        label="Recipient's e-mail", widget=forms.EmailInput(attrs={"autocomplete": "off"})
    )
    purpose = forms.CharField(
        label="Purpose (for the patient's accounting of disclosures)",
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. second opinion requested by the patient"}),
    )
    expires_in_days = forms.IntegerField(
        label="Link works for (days)",
        min_value=1,
        max_value=actions.MAX_EXPIRY_DAYS,
        initial=actions.DEFAULT_EXPIRY_DAYS,
    )
    max_downloads = forms.IntegerField(
        label="Downloads allowed", min_value=1, max_value=actions.MAX_DOWNLOADS_LIMIT, initial=5
    )

    def __init__(self, *args: Any, file_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["shared_files"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = file_choices
