"""The new-case form: types and formats of the case fields. Whether the case may exist (lab
connected, doctor a prescriber, restorations fit the case type) is decided by cases.actions."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from casebridge.accounts.models import User
from casebridge.cases.models import Delivery, ImagingModality, ImagingRegion
from casebridge.cases.queries import LabChoice
from casebridge.cases.templates import TEMPLATES
from casebridge.orgs.models import Organization


class DateInput(forms.DateInput):
    input_type = "date"


class NewCaseForm(forms.Form):
    patient_name = forms.CharField(label="Patient name", max_length=150)
    patient_dob = forms.DateField(label="Date of birth", required=False, widget=DateInput(), help_text="Optional.")
    chart_number = forms.CharField(label="Chart number", max_length=40, required=False)
    case_type = forms.ChoiceField(label="Case type")
    lab = forms.ChoiceField(label="Lab")
    doctor = forms.ChoiceField(label="Doctor", required=False)
    due_date = forms.DateField(label="Due date", required=False, widget=DateInput())
    delivery = forms.ChoiceField(
        label="Delivery", choices=Delivery.choices, initial=Delivery.SHIP, widget=forms.RadioSelect
    )
    ship_to = forms.CharField(label="Shipping address", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    notes = forms.CharField(
        label="Prescription notes",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Anything the technician should know: margins, contacts, occlusion, characterization.",
    )

    def __init__(self, *args: Any, labs: list[LabChoice], doctors: list[User], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.labs = labs
        self.doctors = doctors
        choices = {
            "case_type": [("", "Choose…")] + [(t.key, t.label) for t in TEMPLATES.values()],
            "lab": [("", "Choose…")] + [(str(c.lab.pk), c.lab.name) for c in labs],
            "doctor": [("", "—")] + [(str(u.pk), u.display_name) for u in doctors],
        }
        for name, options in choices.items():
            cast(forms.ChoiceField, self.fields[name]).choices = options
        if not doctors:
            self.fields["doctor"].help_text = (
                "No prescriber yet: an owner or administrator marks members as prescribers, with their "
                "license, on the Members page."
            )

    def clean_lab(self) -> LabChoice:
        value = self.cleaned_data["lab"]
        choice = next(c for c in self.labs if str(c.lab.pk) == value)  # ChoiceField checked membership
        if not choice.can_receive:
            raise forms.ValidationError(
                f"No agreement is recorded with {choice.lab.name}, so it cannot receive cases yet. "
                "Record a BAA or treatment relationship on the Connections page."
            )
        return choice

    def clean_doctor(self) -> User | None:
        value = self.cleaned_data.get("doctor")
        return next((u for u in self.doctors if str(u.pk) == value), None)


PATIENT_FIELDS = ("patient_name", "patient_dob", "chart_number")


class DraftForm(NewCaseForm):
    """The new-case form for changing a draft. The patient is shown but cannot be changed here
    (cases.actions.update_draft keeps the patient): disabled fields keep their initial values
    whatever is posted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in PATIENT_FIELDS:
            self.fields[name].disabled = True
        self.fields["patient_dob"].help_text = ""


class ImagingOrderForm(forms.Form):
    """An imaging order's fields; whether the center may receive it is decided by
    cases.imaging_orders.order_imaging (connected, agreement recorded)."""

    center = forms.ChoiceField(label="Imaging center")
    modality = forms.ChoiceField(label="Study", choices=[("", "Choose…"), *ImagingModality.choices])
    region = forms.ChoiceField(label="Region", choices=[("", "Choose…"), *ImagingRegion.choices])
    teeth = forms.CharField(
        label="Teeth",
        required=False,
        max_length=120,
        help_text="FDI codes for a localized study, e.g. 36, 37.",
    )
    clinical_question = forms.CharField(
        label="Clinical question",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the study should answer, e.g. bone volume at 36 for an implant.",
    )

    def __init__(self, *args: Any, centers: list[tuple[Organization, bool]], **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "imaging")
        super().__init__(*args, **kwargs)
        center_field = cast(forms.ChoiceField, self.fields["center"])
        center_field.choices = [
            ("", "Choose…"),
            *((org.slug, org.name if ok else f"{org.name} (no agreement recorded)") for org, ok in centers),
        ]
