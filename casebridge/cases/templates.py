"""Case-type templates: what a practice must send for each kind of work, so the lab never waits
for a missing scan. The submit form lists what is still missing before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casebridge.cases.models import AttachmentKind as K
from casebridge.cases.models import Restoration as R

if TYPE_CHECKING:
    from casebridge.cases.models import Case


@dataclass(frozen=True)
class Requirement:
    kind: str
    count: int
    description: str


@dataclass(frozen=True)
class CaseTemplate:
    key: str
    label: str
    restorations: frozenset[str]
    requirements: tuple[Requirement, ...]
    needs_teeth: bool = True
    due_within_days: int | None = None
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)


TEMPLATES: dict[str, CaseTemplate] = {
    t.key: t
    for t in (
        CaseTemplate(
            "digital_crown",
            "Digital single crown",
            frozenset({R.CROWN}),
            (
                Requirement(K.SCAN, 3, "preparation scan, opposing scan and bite registration"),
                Requirement(K.PHOTO, 2, "two shade photos with the shade tab in view"),
            ),
        ),
        CaseTemplate(
            "bridge",
            "Bridge",
            frozenset({R.BRIDGE_ABUTMENT, R.BRIDGE_PONTIC}),
            (
                Requirement(K.SCAN, 3, "preparation scan, opposing scan and bite registration"),
                Requirement(K.PHOTO, 2, "two shade photos"),
            ),
        ),
        CaseTemplate(
            "implant_crown",
            "Implant crown",
            frozenset({R.IMPLANT_CROWN, R.IMPLANT_ABUTMENT}),
            (
                Requirement(K.SCAN, 3, "scan-body scan, opposing scan and bite registration"),
                Requirement(K.CBCT, 1, "CBCT of the implant site"),
                Requirement(K.PHOTO, 2, "scan-body photo and a shade photo"),
            ),
        ),
        CaseTemplate(
            "veneers",
            "Veneers",
            frozenset({R.VENEER}),
            (
                Requirement(K.SCAN, 3, "preparation scan, opposing scan and bite registration"),
                Requirement(K.PHOTO, 3, "smile, retracted and shade photos"),
            ),
        ),
        CaseTemplate(
            "complete_denture",
            "Complete denture",
            frozenset({R.COMPLETE_DENTURE}),
            (Requirement(K.SCAN, 2, "edentulous arch scans (or scanned impressions) and bite record"),),
            needs_teeth=False,
        ),
        CaseTemplate(
            "partial_denture",
            "Partial denture",
            frozenset({R.PARTIAL_DENTURE}),
            (Requirement(K.SCAN, 2, "arch scan and opposing scan"),),
            needs_teeth=False,
        ),
        CaseTemplate(
            "night_guard",
            "Night guard / splint",
            frozenset({R.NIGHT_GUARD}),
            (Requirement(K.SCAN, 2, "upper and lower scans"),),
            needs_teeth=False,
        ),
        CaseTemplate(
            "surgical_guide",
            "Surgical guide",
            frozenset({R.SURGICAL_GUIDE}),
            (Requirement(K.SCAN, 1, "arch scan"), Requirement(K.CBCT, 1, "CBCT of the surgical site")),
            needs_teeth=False,
        ),
        CaseTemplate(
            "rush_repair",
            "Rush repair",
            frozenset({R.COMPLETE_DENTURE, R.PARTIAL_DENTURE, R.NIGHT_GUARD}),
            (Requirement(K.PHOTO, 2, "photos of the broken appliance from two sides"),),
            needs_teeth=False,
            due_within_days=2,
        ),
    )
}


def missing(case: Case) -> list[str]:
    """What still has to be added before `case` can be sent, in plain words (empty when ready)."""
    template = TEMPLATES.get(case.case_type)
    if template is None:
        return [f"Choose a case type ({', '.join(t.label for t in TEMPLATES.values())})."]
    problems: list[str] = []
    items = list(case.items.all())
    if not items:
        problems.append("Add at least one restoration" + (" on the tooth chart." if template.needs_teeth else "."))
    for item in items:
        if item.restoration not in template.restorations:
            problems.append(f"{item.get_restoration_display()} does not belong in a {template.label.lower()} case.")
        if template.needs_teeth and item.tooth is None:
            problems.append(f"Choose the tooth for the {item.get_restoration_display().lower()}.")
    counts: dict[str, int] = {}
    for attachment in case.attachments.all():
        counts[attachment.kind] = counts.get(attachment.kind, 0) + 1
    for requirement in template.requirements:
        have = counts.get(requirement.kind, 0)
        if have < requirement.count:
            label = K(requirement.kind).label.lower()
            problems.append(f"Add {requirement.count - have} more {label} file(s): {requirement.description}.")
    if case.lab_id is None:
        problems.append("Choose the lab.")
    if case.due_date is None:
        problems.append("Set the due date.")
    if case.delivery == "ship" and not case.ship_to.strip():
        problems.append("Enter the shipping address, or choose local pickup.")
    return problems
