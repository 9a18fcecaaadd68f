"""Draft notification letters after a breach (issue 16, item 6): one per notice the incident's
clocks require, each made of the elements the rule lists, pre-filled from the incident and the
organization, edited by the compliance officer, and finalized only when every element is written
and no [[placeholder]] is left.

The elements, by notice:
- individuals (45 CFR 164.404(c)(1)(A)-(E)) in plain language (164.404(c)(2)); the media notice
  carries the same content (164.406(c));
- HHS: the breach portal's questions (164.408), drafted so the portal form is filled in minutes;
- the covered entity, from a business associate (164.410(c)): who was affected, as far as known,
  and what the covered entity needs for its own notices;
- the GDPR supervisory authority (Art. 33(3)(a)-(d)).

The letters to individuals and the media are addressed generically: names and addresses are
merged when they are printed or mailed, never stored here."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from casebridge.access.policy import OrgAccess
from casebridge.access.roles import Perm
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.compliance.incidents import clocks
from casebridge.compliance.models import Incident, NotificationLetter
from casebridge.core.pdf import document, latin

PLACEHOLDER = "[["
TEXT_LIMIT = 6000


@dataclass(frozen=True)
class Element:
    key: str
    label: str
    citation: str


_INDIVIDUAL_ELEMENTS = (
    Element(
        "what_happened", "What happened, with the date of the breach and the date of discovery", "164.404(c)(1)(A)"
    ),
    Element("information", "The kinds of information involved", "164.404(c)(1)(B)"),
    Element("protect", "What you can do to protect yourself", "164.404(c)(1)(C)"),
    Element("our_actions", "What we are doing about it", "164.404(c)(1)(D)"),
    Element("contact", "How to reach us (toll-free number, e-mail, website or postal address)", "164.404(c)(1)(E)"),
)

ELEMENTS: dict[str, tuple[Element, ...]] = {
    "individuals": _INDIVIDUAL_ELEMENTS,
    "media": _INDIVIDUAL_ELEMENTS,
    "hhs": (
        Element("entity", "Covered entity and contact", "164.408; HHS breach portal"),
        Element("breach", "Dates of breach and discovery, type and location of the breach", "164.408"),
        Element("individuals", "Number of individuals affected", "164.408(b)-(c)"),
        Element("information", "Kinds of information involved", "164.408"),
        Element("safeguards", "Safeguards in place before the breach", "164.408; 164.308-164.316"),
        Element("actions", "Actions taken in response", "164.408"),
    ),
    "covered_entity": (
        Element("what_happened", "What happened, with the dates of breach and discovery", "164.410(c)(2)"),
        Element("individuals", "Each individual affected, as far as identified", "164.410(c)(1)"),
        Element("information", "The kinds of information involved", "164.410(c)(2); 164.404(c)(1)(B)"),
        Element("our_actions", "What we are doing to investigate, mitigate and prevent", "164.410(c)(2)"),
        Element("contact", "Who to contact at the business associate", "164.410(c)(2)"),
    ),
    "authority": (
        Element("nature", "Nature of the breach, categories and approximate numbers", "GDPR Art. 33(3)(a)"),
        Element("contact", "Data protection officer or other contact point", "GDPR Art. 33(3)(b)"),
        Element("consequences", "Likely consequences", "GDPR Art. 33(3)(c)"),
        Element("measures", "Measures taken or proposed, including mitigation", "GDPR Art. 33(3)(d)"),
    ),
}

TITLES = {
    "individuals": "Notice of a data breach (to each affected individual)",
    "media": "Notice of a data breach (to prominent media outlets)",
    "hhs": "Breach report to HHS (for the breach portal)",
    "covered_entity": "Notice of a breach to the covered entity",
    "authority": "Notification of a personal data breach to the supervisory authority",
}


def _contact(incident: Incident) -> str:
    org = incident.organization
    lines = [org.name]
    if org.phone:
        lines.append(f"Telephone: {org.phone}")
    if org.address:
        lines.append(org.address.strip())
    lines.append("[[a toll-free number, an e-mail address or a website where people can ask questions]]")
    return "\n".join(lines)


def prefill(incident: Incident, key: str) -> dict[str, str]:
    """A first draft of each element from what the incident already records. What only a person
    can say is left as a [[placeholder]] the checker will not let through."""
    org = incident.organization
    discovered = f"{incident.discovered_at:%B %d, %Y}"
    occurred = f"{incident.occurred_at:%B %d, %Y}" if incident.occurred_at else "[[the date it happened]]"
    dates = f"The breach happened on {occurred} and we discovered it on {discovered}."
    count = incident.individuals_affected
    what = f"{dates} [[describe in plain words what happened, without naming anyone]]"
    information = "[[for example: names, dates of birth, dental records, X-ray images, insurance information]]"
    actions = (
        "We are investigating what happened, have [[steps taken: for example, reset passwords, recovered "
        "the device, revoked the shared link]] and are reviewing our safeguards so it does not happen again."
    )
    drafts: dict[str, dict[str, str]] = {
        "individuals": {
            "what_happened": what,
            "information": f"The information involved was: {information}.",
            "protect": (
                "Review the statements you receive from your dental and health insurers; if you see "
                "services you did not receive, call the insurer. [[add steps that fit this breach]]"
            ),
            "our_actions": actions,
            "contact": _contact(incident),
        },
        "hhs": {
            "entity": f"{org.name}\n{org.address.strip() or '[[address]]'}\n{org.phone or '[[telephone]]'}",
            "breach": f"{dates}\nType: [[theft, loss, unauthorized access or disclosure, hacking/IT incident]]\n"
            f"Location: {incident.systems or '[[where the information was: e-mail, laptop, network server...]]'}",
            "individuals": str(count) if count else "[[number of individuals affected]]",
            "information": information,
            "safeguards": "Encryption at rest and in transit, unique logins with multi-factor authentication, "
            "a tamper-evident audit log, least-privilege access. [[anything else in place]]",
            "actions": actions,
        },
        "covered_entity": {
            "what_happened": what,
            "individuals": "[[the affected patients, as far as identified: sent separately over CaseBridge, "
            "never in this letter's e-mail]]",
            "information": information,
            "our_actions": actions,
            "contact": _contact(incident),
        },
        "authority": {
            "nature": f"{dates} [[nature of the breach]]. Approximately {count or '[[number]]'} data subjects "
            "(patients) are concerned; categories of data: health data (dental records and images).",
            "contact": _contact(incident),
            "consequences": "[[likely consequences for the people concerned]]",
            "measures": actions,
        },
    }
    drafts["media"] = dict(drafts["individuals"])
    return drafts[key]


def letter_for(incident: Incident, key: str) -> NotificationLetter:
    """The incident's letter for one notice, drafted on first use."""
    if key not in {d.key for d in clocks(incident)}:
        raise ValidationError("That notice is not one this incident requires.")
    letter = NotificationLetter.objects.filter(incident=incident, key=key).first()
    return letter or NotificationLetter(incident=incident, key=key, sections=prefill(incident, key))


def problems(key: str, sections: dict[str, str]) -> dict[str, str]:
    """What keeps a letter from being final: each element the rule lists, written, with no
    [[placeholder]] left and within the length limit."""
    found: dict[str, str] = {}
    for element in ELEMENTS[key]:
        text = sections.get(element.key, "").strip()
        if not text:
            found[element.key] = f"Write this part: {element.citation} requires it."
        elif PLACEHOLDER in text:
            found[element.key] = "Replace every [[...]] with the real information."
        elif len(text) > TEXT_LIMIT:
            found[element.key] = f"Keep it under {TEXT_LIMIT:,} characters."
    return found


def save(
    access: OrgAccess, incident: Incident, key: str, sections: dict[str, str], *, finalize: bool
) -> NotificationLetter:
    """Save the draft; with `finalize`, only a complete letter (problems() empty) is made final. A
    final letter is the record of what was sent and is not edited again."""
    access.require(Perm.COMPLIANCE_MANAGE)
    if incident.organization_id != access.organization.pk:
        raise ValidationError("This incident belongs to another organization.")
    letter = letter_for(incident, key)
    if letter.finalized_at is not None:
        raise ValidationError("This letter is final: it is the record of what was sent.")
    cleaned = {e.key: sections.get(e.key, "").replace("\r\n", "\n").strip() for e in ELEMENTS[key]}
    errors = {k: v for k, v in problems(key, cleaned).items() if finalize or "characters" in v}
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        letter.sections = cleaned
        letter.updated_at = timezone.now()
        if finalize:
            letter.finalized_at = letter.updated_at
            letter.finalized_by = access.actor if isinstance(access.actor, User) else None
        letter.save()
        record(
            "compliance.incident.letter_saved",
            actor=access.actor,
            organization=access.organization,
            target=incident,
            details={"incident": str(incident.pk), "notice": key, "final": finalize},
        )
    return letter


def pdf(access: OrgAccess, letter: NotificationLetter) -> bytes:
    """The letter as a PDF: a draft says so across its title; the final one carries its date."""
    access.require(Perm.COMPLIANCE_MANAGE)
    incident = letter.incident
    title = TITLES[letter.key]
    doc = document(title)
    doc.set_font("Helvetica", "B", 14)
    heading = title if letter.finalized_at else f"DRAFT - {title}"
    doc.multi_cell(0, 8, latin(heading), new_x="LMARGIN", new_y="NEXT")
    doc.set_font("Helvetica", "", 10)
    when = letter.finalized_at or timezone.now()
    doc.multi_cell(0, 6, latin(f"{incident.organization.name} - {when:%B %d, %Y}"), new_x="LMARGIN", new_y="NEXT")
    doc.ln(4)
    if letter.key in ("individuals", "media"):
        doc.multi_cell(0, 6, "Dear Patient," if letter.key == "individuals" else "To the editor,")
        doc.ln(2)
    for element in ELEMENTS[letter.key]:
        doc.set_font("Helvetica", "B", 11)
        doc.multi_cell(0, 6, latin(element.label), new_x="LMARGIN", new_y="NEXT")
        doc.set_font("Helvetica", "", 11)
        doc.multi_cell(0, 6, latin(letter.sections.get(element.key, "")), new_x="LMARGIN", new_y="NEXT")
        doc.ln(3)
    record(
        "compliance.incident.letter_printed",
        actor=access.actor,
        organization=access.organization,
        target=incident,
        details={"incident": str(incident.pk), "notice": letter.key, "final": letter.finalized_at is not None},
    )
    return bytes(doc.output())
