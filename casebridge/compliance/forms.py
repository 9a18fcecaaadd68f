"""Forms of the incident pages: types and formats; compliance.incidents decides."""

from __future__ import annotations

from typing import Any

from django import forms

from casebridge.compliance.models import BaaStatus, Decision, RequestKind, RiskStatus
from casebridge.compliance.risk import NOTE_LIMIT


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"


class IncidentForm(forms.Form):
    title = forms.CharField(label="Title", max_length=200, help_text="Short, without patient names.")
    description = forms.CharField(label="What happened", widget=forms.Textarea(attrs={"rows": 3}))
    discovered_at = forms.DateTimeField(
        label="Discovered",
        widget=DateTimeInput(),
        help_text="When it was known, or should have been: the clocks start here.",
    )
    occurred_at = forms.DateTimeField(label="Occurred", required=False, widget=DateTimeInput())
    systems = forms.CharField(label="Systems involved", max_length=300, required=False)
    is_exercise = forms.BooleanField(label="This is a tabletop exercise", required=False)


class AssessmentForm(forms.Form):
    factor_nature = forms.CharField(
        label="1. The PHI involved",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Types of identifiers, how sensitive, how likely re-identification is.",
    )
    factor_recipient = forms.CharField(
        label="2. Who used it or received it", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    factor_acquired = forms.CharField(
        label="3. Was it actually acquired or viewed?", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    factor_mitigation = forms.CharField(
        label="4. How far the risk was mitigated", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    individuals_affected = forms.IntegerField(label="Individuals affected", min_value=0, initial=0)
    most_in_one_state = forms.IntegerField(label="Most in one State", min_value=0, initial=0)
    under_gdpr = forms.BooleanField(label="Individuals under the GDPR are affected", required=False)
    contract_deadline_days = forms.IntegerField(
        label="BAA notice deadline (days)", required=False, min_value=1, max_value=60, help_text="Labs: your BAA's."
    )
    decision = forms.ChoiceField(label="Decision", choices=Decision.choices)
    decision_rationale = forms.CharField(label="Why", required=False, widget=forms.Textarea(attrs={"rows": 2}))


class DateInput(forms.DateInput):
    input_type = "date"


class VendorForm(forms.Form):
    name = forms.CharField(label="System or vendor", max_length=150)
    category = forms.CharField(
        label="Kind",
        max_length=60,
        required=False,
        help_text="e.g. e-mail, cloud storage, impression platform, backups.",
    )
    data_handled = forms.CharField(label="Patient data it handles", max_length=300, required=False)
    baa_status = forms.ChoiceField(label="BAA", choices=BaaStatus.choices)
    baa_signed_on = forms.DateField(label="BAA signed on", required=False, widget=DateInput())
    renewal_due = forms.DateField(label="BAA renewal due", required=False, widget=DateInput())
    reassessment_due = forms.DateField(label="Next reassessment", required=False, widget=DateInput())
    notes = forms.CharField(label="Notes", required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RiskEntryForm(forms.Form):
    threat = forms.CharField(
        label="Threat", max_length=200, help_text="What could happen, e.g. a laptop with patient files is stolen."
    )
    vulnerability = forms.CharField(
        label="Vulnerability", max_length=300, help_text="What makes it possible, e.g. its disk is not encrypted."
    )
    likelihood = forms.TypedChoiceField(
        label="Likelihood (1-5)", coerce=int, choices=[(n, str(n)) for n in range(1, 6)], initial=3
    )
    impact = forms.TypedChoiceField(
        label="Impact (1-5)", coerce=int, choices=[(n, str(n)) for n in range(1, 6)], initial=3
    )
    owner = forms.CharField(label="Owner", required=False)  # an active member's id, checked by compliance.risk
    remediation = forms.CharField(
        label="Remediation plan", required=False, max_length=NOTE_LIMIT, widget=forms.Textarea(attrs={"rows": 2})
    )
    due_on = forms.DateField(label="Due", required=False, widget=DateInput())
    status = forms.ChoiceField(label="Status", choices=RiskStatus.choices, initial=RiskStatus.OPEN)


class SubjectRequestForm(forms.Form):
    patient = forms.ChoiceField(label="Patient")
    kind = forms.ChoiceField(label="The patient asks for", choices=RequestKind.choices)
    received_on = forms.DateField(
        label="Received on", widget=DateInput(), help_text="The deadline runs from the day the request arrived."
    )
    under_gdpr = forms.BooleanField(
        label="The GDPR applies",
        required=False,
        help_text="Your organization is in the EU/EEA, or the patient was there when you offered them care (Art. 3).",
    )

    def __init__(self, *args: Any, patients: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["patient"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose…"), *patients]
