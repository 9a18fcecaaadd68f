"""Forms for the practice's sharing pages: they parse input; sharing.actions decides."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.deid import export as deid_export
from casebridge.sharing import actions


class ShareForm(forms.Form):
    shared_files = forms.MultipleChoiceField(
        label="Files to share",
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one file to share.",
            "invalid_choice": "That file is no longer part of this case; choose again.",
        },
    )
    recipient_email = forms.EmailField(
        label="Recipient's e-mail",
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
        error_messages={
            "required": "Enter the recipient's e-mail address.",
            "invalid": "Enter a complete e-mail address, like name@example.com.",
        },
    )
    purpose = forms.CharField(
        label="Purpose (for the patient's accounting of disclosures)",
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. second opinion requested by the patient"}),
        error_messages={"required": "Say why the files are shared: it goes into the patient's accounting."},
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

    send_originals = forms.BooleanField(
        label="Send the originals, not de-identified copies",
        required=False,
        help_text="By default the recipient gets de-identified copies: DICOM without identity, photos and scans "
        "without metadata, files that cannot be de-identified left out.",
    )
    clean_pixel = forms.BooleanField(
        label="Blank burned-in text with our pixel masks (Clean Pixel Data)",
        required=False,
        help_text="DICOM images of a device your organization has a pixel mask for (Settings) have its "
        "rectangles set to black. Stricter than the default: no reason needed.",
    )
    deid_options = forms.MultipleChoiceField(
        label="Keep more in the DICOM files (each needs the reason below)",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=list(deid_export.OPTION_LABELS.items()),
    )
    reason = forms.CharField(
        label="Why the recipient needs more than the de-identified files (recorded in the audit log)",
        required=False,
        max_length=500,
    )

    def __init__(self, *args: Any, file_choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["shared_files"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = file_choices

    def mark_errors(self) -> None:
        """Tie each refused field to its message for assistive technology (Django adds
        aria-invalid itself) and put the keyboard on the first one, also after an htmx swap,
        which honours ``autofocus``."""
        first = True
        for name, field in self.fields.items():
            if name in self.errors:
                field.widget.attrs["aria-describedby"] = f"{self[name].auto_id}_errors"
                if first:
                    field.widget.attrs["autofocus"] = True
                    first = False
