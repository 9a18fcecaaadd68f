"""Forms of the Files page: they parse input; the case and vault actions decide."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.cases.actions import ATTACHMENT_LABELS
from casebridge.cases.models import Case

NOT_ONE_OF_YOURS = "Choose one of the cases listed: the file can go only to a case you may add files to now."


class AttachForm(forms.Form):
    case = forms.ChoiceField(label="Case", error_messages={"invalid_choice": NOT_ONE_OF_YOURS})
    kind = forms.ChoiceField(
        label="The file is", error_messages={"invalid_choice": "Choose what kind of file this is."}
    )
    label = forms.ChoiceField(
        label="Label",
        required=False,
        help_text="Optional: names the file on the case, e.g. upper becomes CB-…_upper_1.stl.",
        choices=[("", "—"), *((value, value) for value in ATTACHMENT_LABELS)],
    )

    def __init__(self, *args: Any, cases: list[Case], kinds: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The picker names the patient, as the case list does: the view records who was shown.
        case_field = self.fields["case"]
        assert isinstance(case_field, forms.ChoiceField)
        case_field.choices = [("", "Choose a case…"), *((c.number, f"{c.number} · {c.patient.name}") for c in cases)]
        kind_field = self.fields["kind"]
        assert isinstance(kind_field, forms.ChoiceField)
        kind_field.choices = [("", "Choose…"), *kinds]


class DestroyForm(forms.Form):
    reason = forms.CharField(
        label="Why delete it?",
        max_length=200,
        help_text="A few words, kept in the audit log (e.g. uploaded twice, wrong file). No patient names.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
